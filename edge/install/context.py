"""Everything a step needs to decide what to do: the device, the profile, resolved settings, and
how commands are run (really, recorded for a staged root, or not at all for a dry run)."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Mapping

from edge.config import Profile
from edge.device.detect import DeviceInfo, cuda_tag, read_text, under, wheel_platform
from edge.device.nvpmodel import NvpmodelConf, PowerMode, Runner
from edge.errors import EdgeError

INDEX_URL_ENV = "TINYVLA_EDGE_INDEX_URL"
REALSENSE_SOURCE_ENV = "TINYVLA_EDGE_REALSENSE_SOURCE"
STATE_DIR = "/var/lib/tinyvla-edge"
RECORD_PATH = f"{STATE_DIR}/install.json"
DEFAULT_VENV = "/opt/tinyvla-edge/venv"
SERVICE_GROUPS = ("dialout", "plugdev", "video")

Mode = Literal["device", "staged", "dry-run"]


class InstallError(EdgeError):
    """A step that cannot be planned or failed to apply; the message says what to do."""


@dataclass(frozen=True)
class InstallSettings:
    """Settings after applying command line > environment > profile > derived defaults."""

    user: str
    venv: str
    index_url: str | None  # with {platform}/{cuda_tag} filled in
    arm_serial: str | None
    enable_service: bool
    consent: bool  # --yes: allowed to remove conflicting packages and disable services
    realsense_source: str | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class InstallContext:
    """One install run's view of the world."""

    root: str
    mode: Mode
    device: DeviceInfo
    profile: Profile
    profile_ref: str  # how the service names the profile (name, or absolute path)
    settings: InstallSettings
    conf: NvpmodelConf | None
    runner: Runner | None  # for queries on the real root; commands run through it only in "device" mode
    is_root_user: bool
    cache: dict = field(default_factory=dict)  # results of probes, so planning twice probes once

    @property
    def staged(self) -> bool:
        return Path(self.root).resolve() != Path("/")

    @property
    def executing(self) -> bool:
        """Commands really run (not recorded, not printed)."""
        return self.mode == "device"

    def path(self, device_path: str) -> Path:
        return under(self.root, device_path)

    def read(self, device_path: str) -> str | None:
        return read_text(self.root, device_path)

    @property
    def python(self) -> str:
        return self.device.python

    @property
    def venv_python(self) -> str:
        return f"{self.settings.venv}/bin/python"

    def target_mode(self) -> PowerMode | None:
        """The profile's nvpmodel mode resolved by name in this device's conf."""
        if not self.profile.power.mode or self.conf is None:
            return None
        return self.conf.by_name(self.profile.power.mode)

    def service_cpus(self) -> list[int]:
        """CPUs online under the profile's power mode (modes offline cores, §7)."""
        mode = self.target_mode()
        if mode is not None and mode.online_cpus:
            return list(mode.online_cpus)
        return self.device.online_cpus or self.device.possible_cpus or [0]


def resolve_index_url(template: str | None, device: DeviceInfo) -> str | None:
    """Fill `{platform}` and `{cuda_tag}` (e.g. jp6/cu126, sbsa/cu130, reference §4.1)."""
    if not template:
        return None
    return template.format(platform=wheel_platform(device) or "", cuda_tag=cuda_tag(device) or "")


def default_venv(staged: bool) -> str:
    """The venv this tinyvla-edge runs from (jetson_setup.sh made it), else /opt/tinyvla-edge/venv."""
    if not staged and sys.prefix != sys.base_prefix:
        return sys.prefix
    return DEFAULT_VENV


def resolve_settings(
    profile: Profile,
    device: DeviceInfo,
    *,
    staged: bool,
    user: str | None,
    index_url: str | None,
    venv: str | None,
    arm_serial: str | None,
    enable_service: bool | None,
    consent: bool,
    env: Mapping[str, str] | None = None,
) -> InstallSettings:
    """Merge command line, environment and profile; fail early on what cannot be derived."""
    env = os.environ if env is None else env
    spec = profile.install
    resolved_user = user or spec.user or (None if staged else env.get("SUDO_USER"))
    if not resolved_user:
        raise InstallError("which user runs the service? pass --user NAME (or set install.user in the profile)")
    if resolved_user == "root":
        raise InstallError("the service must not run as root: pass --user with a normal account")
    template = index_url or env.get(INDEX_URL_ENV) or spec.index_url
    return InstallSettings(
        user=resolved_user,
        venv=(venv or spec.venv or default_venv(staged)).rstrip("/"),
        index_url=resolve_index_url(template, device),
        arm_serial=arm_serial or profile.arm.usb_serial,
        enable_service=spec.enable_service if enable_service is None else enable_service,
        consent=consent,
        realsense_source=env.get(REALSENSE_SOURCE_ENV) or spec.realsense_source,
    )
