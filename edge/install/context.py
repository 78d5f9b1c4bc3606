"""Everything a step needs to decide what to do: the device, the profile, resolved settings, and
how commands are run (really, recorded for a staged root, or not at all for a dry run)."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Mapping

from edge.config import Profile, safe_source, safe_value
from edge.device.detect import DeviceInfo, cuda_tag, wheel_platform
from edge.device.nvpmodel import NvpmodelConf, PowerMode, Runner
from edge.errors import EdgeError
from edge.install.rootfs import inside_root, read_in_root
from edge.install.sysstate import users

INDEX_URL_ENV = "TINYVLA_EDGE_INDEX_URL"
REALSENSE_SOURCE_ENV = "TINYVLA_EDGE_REALSENSE_SOURCE"
# The Jetson AI Lab community index (reference §4.1): torch, torchvision, torch-tensorrt,
# onnxruntime-gpu and bitsandbytes built for each JetPack's CUDA and Python. Its host has moved
# before (a redirect host, a .dev host, now .io): --index-url, the environment or the profile
# override it.
DEFAULT_INDEX_URL = "https://pypi.jetson-ai-lab.io/{platform}/{cuda_tag}"
# librealsense moved from IntelRealSense/ to realsenseai/ on GitHub (the old name redirects).
DEFAULT_REALSENSE_SOURCE = "https://github.com/realsenseai/librealsense.git"
# /proc/self/loginuid: the uid the login session started as; sudo keeps it (logname reads it).
LOGINUID_PATH = "/proc/self/loginuid"
UNSET_LOGINUID = 4294967295
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
    user_from: str  # where the user came from (--user, $SUDO_USER, the login session, ...)
    venv: str
    index_url: str | None  # with {platform}/{cuda_tag} filled in; None where no wheels are installed
    index_from: str
    arm_serial: str | None
    enable_service: bool
    consent: bool  # --yes: allowed to remove conflicting packages and disable services
    realsense_source: str

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
        """Where `device_path` is in the root tree (never outside it), for existence checks."""
        return inside_root(self.root, device_path, follow_last=True)

    def read(self, device_path: str) -> str | None:
        return read_in_root(self.root, device_path)

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


def resolve_index_url(template: str, device: DeviceInfo) -> str | None:
    """Fill `{platform}` and `{cuda_tag}` (e.g. jp6/cu126, sbsa/cu130, reference §4.1); None off a Jetson."""
    platform, tag = wheel_platform(device), cuda_tag(device)
    if not device.is_jetson or not platform or not tag:
        return None
    return template.format(platform=platform, cuda_tag=tag)


def default_venv(staged: bool) -> str:
    """The venv this tinyvla-edge runs from (jetson_setup.sh made it), else /opt/tinyvla-edge/venv."""
    if not staged and sys.prefix != sys.base_prefix:
        return sys.prefix
    return DEFAULT_VENV


def wheel_index(device: DeviceInfo, cli: str | None, profile_index: str | None,
                env: Mapping[str, str]) -> tuple[str | None, str]:
    """The JetPack wheel index and where it came from: --index-url, then the environment, then the
    profile, then the community index. The template is checked before {platform}/{cuda_tag} are
    filled in; None (with the reason) off a Jetson."""
    template, source = first_given((cli, "--index-url"), (env.get(INDEX_URL_ENV), f"${INDEX_URL_ENV}"),
                                   (profile_index, "install.index_url"),
                                   (DEFAULT_INDEX_URL, "default: Jetson AI Lab community index"))
    checked("url", template or "", f"wheel index ({source})")
    url = resolve_index_url(template or "", device)
    return url, source if url else "not used (not a Jetson)"


def checked(kind: str, value: str, what: str) -> str:
    """safe_value for an install input, as a one-line InstallError."""
    try:
        return safe_value(kind, value, what)
    except ValueError as e:
        raise InstallError(str(e)) from None


def first_given(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    """The first (value, where it came from) whose value is set."""
    return next(((v, src) for v, src in candidates if v), (None, ""))


def login_user(root: str, env: Mapping[str, str]) -> tuple[str | None, str]:
    """Who is installing: $SUDO_USER (sudo sets it), else the owner of the login session.

    The login session's owner is /proc/self/loginuid (what `logname` reads): set at login by
    pam_loginuid and kept across sudo and su. Root is never the answer: the service must not run
    as root, so a root login falls through to the next source.
    """
    sudo_user = env.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        return sudo_user, "$SUDO_USER"
    text = (read_in_root(root, LOGINUID_PATH) or "").strip()
    if text.isdigit() and int(text) not in (0, UNSET_LOGINUID):
        owner = next((u.name for u in users(root).values() if u.uid == int(text)), None)
        if owner:
            return owner, f"the login session ({LOGINUID_PATH})"
    return None, ""


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
    """Merge command line, environment and profile; fail early on what cannot be derived.

    Every value that reaches a unit file, udev rule or command is checked against its safe
    character set here (the profile's own values were checked when it loaded).
    """
    env = os.environ if env is None else env
    spec = profile.install
    resolved_user, user_from = first_given((user, "--user"), (spec.user, "install.user"))
    if not resolved_user:
        resolved_user, user_from = login_user(device.root, env)
    if not resolved_user:
        raise InstallError("which user runs the service? run install with sudo from that user's account, "
                           "or pass --user NAME (or set install.user in the profile)")
    checked("user", resolved_user, f"service user ({user_from})")
    if resolved_user == "root":
        raise InstallError("the service must not run as root: pass --user with a normal account")

    resolved_index, index_from = wheel_index(device, index_url, spec.index_url, env)
    resolved_venv = (venv or spec.venv or default_venv(staged)).rstrip("/")
    checked("path", resolved_venv, "--venv" if venv else "install.venv" if spec.venv else "venv (pass --venv PATH)")
    serial = arm_serial or profile.arm.usb_serial
    if serial:
        checked("usb-serial", serial, "--arm-serial" if arm_serial else "arm.usb_serial")
    source = env.get(REALSENSE_SOURCE_ENV) or spec.realsense_source or DEFAULT_REALSENSE_SOURCE
    try:
        safe_source(source, "librealsense source")
    except ValueError as e:
        raise InstallError(str(e)) from None
    return InstallSettings(
        user=resolved_user,
        user_from=user_from,
        venv=resolved_venv,
        index_url=resolved_index,
        index_from=index_from,
        arm_serial=serial,
        enable_service=spec.enable_service if enable_service is None else enable_service,
        consent=consent,
        realsense_source=source,
    )
