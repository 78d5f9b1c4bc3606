"""Deployment profiles: typed schema, loaded from `profiles/*.yaml`.

A profile says how a bundle is deployed on one kind of device: power mode, engines and
precision per component, head steps, control rate, cameras and arm limits. See docs/profiles.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ProfileError

Engine = Literal["torch", "onnxruntime", "tensorrt", "bitsandbytes"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]

PROFILE_DIR_ENV = "TINYVLA_EDGE_PROFILES"
REPO_PROFILE_DIR = Path(__file__).resolve().parents[1] / "profiles"


# ----------------------------------------------------------------------------- safe values
#
# Values from a profile, an argument or the environment reach root-owned udev rules, systemd
# units, environment files and command lines (`tinyvla-edge install`). Each kind of value has a
# strict character set with nothing that quotes, escapes, separates, comments or expands in any
# of those formats (no whitespace, quotes, backslash, `$`, `%`, `;`, `#`, `=` in names, newline).
# Checking what a value may be is simpler and safer than escaping it for four syntaxes.
SAFE_VALUES: dict[str, tuple[str, str]] = {
    # kind: (full-match regex, what a user is told is allowed)
    "name": (r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "letters, digits, '.', '_', '-' (max 64, not starting with '.' or '-')"),
    "user": (r"[a-z_][a-z0-9_-]{0,31}", "a POSIX user name: lowercase letters, digits, '_', '-' (max 32)"),
    "usb-serial": (r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "letters, digits, '.', '_', '-' (max 64)"),
    "usb-id": (r"[0-9A-Fa-f]{4}", "four hex digits, e.g. 0403"),
    "mode": (r"[A-Za-z0-9_]{1,32}", "letters, digits, '_' (an nvpmodel mode name)"),
    "cpu-list": (r"\d{1,3}(-\d{1,3})?(,\d{1,3}(-\d{1,3})?)*", "a CPU list such as 1-5 or 2,4-7"),
    "git-ref": (r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", "a git tag or branch: letters, digits, '.', '_', '/', '-'"),
    "path": (r"(/[A-Za-z0-9._+-]{1,128}){1,32}",
             "an absolute path of letters, digits, '.', '_', '+', '-' with no '.' or '..' parts"),
    "url": (r"https?://[A-Za-z0-9.-]{1,253}(:\d{1,5})?(/[A-Za-z0-9._~+-]*)*",
            "an http(s) URL of letters, digits and . _ ~ + - / (no credentials, query or spaces)"),
}
# Index URL templates may carry these placeholders, filled in from the detected JetPack.
URL_PLACEHOLDERS = ("{platform}", "{cuda_tag}")
MAX_PATH = 255
# Arm limits and steps are joint units (radians, metres, servo ticks): anything beyond this is a typo.
MAX_ARM_VALUE = 1e6


def safe_value(kind: str, value: str, what: str) -> str:
    """`value` if it is a safe `kind` (see SAFE_VALUES), else ValueError with one line saying why.

    The value is shown with repr() so a newline or quote in it cannot break the message's line.
    """
    pattern, allowed = SAFE_VALUES[kind]
    checked = value
    if kind == "url":
        for placeholder in URL_PLACEHOLDERS:
            checked = checked.replace(placeholder, "x")
    ok = isinstance(value, str) and re.fullmatch(pattern, checked) is not None
    if ok and kind == "path":
        ok = len(value) <= MAX_PATH and not any(part in (".", "..") for part in value.split("/"))
    if ok and kind == "git-ref":
        ok = ".." not in value
    if not ok:
        raise ValueError(f"{what} {value!r} is not allowed: use {allowed}")
    return value


def safe_source(value: str, what: str) -> str:
    """A git URL or an absolute local path (the librealsense source)."""
    return safe_value("path" if value.startswith("/") else "url", value, what)


def _safe(kind: str, what: str) -> AfterValidator:
    return AfterValidator(lambda v: v if v is None else safe_value(kind, v, what))


def _single_line(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > 200:
        raise ValueError("must be one line of printable text (max 200 characters)")
    return value


Name = Annotated[str, _safe("name", "name")]
ArmValue = Annotated[float, Field(ge=-MAX_ARM_VALUE, le=MAX_ARM_VALUE)]
ArmStep = Annotated[float, Field(gt=0, le=MAX_ARM_VALUE)]


class _Strict(BaseModel):
    # allow_inf_nan=False: a NaN limit or an .inf deadline/rate is refused here, not at run time.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ComponentSpec(_Strict):
    """Which engine runs one component, at which precision."""

    engine: Engine = "torch"
    precision: Precision = "fp32"

    @model_validator(mode="after")
    def _engine_supports_precision(self) -> "ComponentSpec":
        supported = {
            "torch": {"fp32", "fp16", "bf16"},
            "onnxruntime": {"fp32", "int8"},
            "tensorrt": {"fp32", "fp16", "int8"},
            "bitsandbytes": {"int8"},
        }[self.engine]
        if self.precision not in supported:
            raise ValueError(
                f"engine {self.engine} does not support precision {self.precision} "
                f"(supported: {', '.join(sorted(supported))})"
            )
        return self


class PowerSpec(_Strict):
    """nvpmodel mode by name (never by ID: IDs differ between modules) and clock locking."""

    mode: Annotated[str | None, _safe("mode", "power.mode")] = None
    lock_clocks: bool = False
    budget_w: float | None = Field(default=None, gt=0, le=1000)


class CameraSpec(_Strict):
    """One camera the policy expects, in the bundle's camera order."""

    name: Name
    width: int = Field(default=640, gt=0, le=8192)
    height: int = Field(default=480, gt=0, le=8192)
    fps: int = Field(default=30, gt=0, le=1000)
    depth: bool = False  # off: color only (no depth stream, no per-frame alignment on the CPU)


class ArmSpec(_Strict):
    """Arm connection and limit overrides (intersected with the arm's own INFO limits)."""

    baud: int = Field(default=1_000_000, gt=0, le=20_000_000)
    usb_serial: Annotated[str | None, _safe("usb-serial", "arm.usb_serial")] = None
    usb_vendor: Annotated[str | None, _safe("usb-id", "arm.usb_vendor")] = None
    usb_product: Annotated[str | None, _safe("usb-id", "arm.usb_product")] = None
    lower: list[ArmValue] | None = Field(default=None, max_length=64)
    upper: list[ArmValue] | None = Field(default=None, max_length=64)
    max_step: list[ArmStep] | None = Field(default=None, max_length=64)
    on_shutdown: Literal["estop", "hold"] = "estop"


class ModelSpec(_Strict):
    """What the bundle is expected to be and how its head is sampled."""

    variant: Literal["S", "B", "H", "tiny", "any"] = "any"
    vision: ComponentSpec = ComponentSpec()
    language: ComponentSpec = ComponentSpec()
    head: ComponentSpec = ComponentSpec()
    head_steps: int = Field(default=10, ge=1, le=100)
    chunk_size: int = Field(default=16, gt=0, le=1024)
    # Pythia's context is 2048 tokens, 1152 of which the two images take.
    max_prompt_tokens: int = Field(default=64, gt=0, le=2048)
    fidelity_max_rmse: float = Field(default=0.05, gt=0, le=2, description="quantize's gate: end-to-end normalized action RMSE")

    def check_chunk_size(self, chunk_size: int) -> None:
        """ProfileError (one line) unless the bundle's head predicts `chunk_size` actions per chunk,
        as the profile says: the ensembling, deadlines and power figures assume it."""
        if chunk_size != self.chunk_size:
            raise ProfileError(f"the bundle predicts {chunk_size} actions per chunk, the profile's model.chunk_size is "
                               f"{self.chunk_size}: run it with the profile it was built for, or set model.chunk_size: {chunk_size}")


class ControlSpec(_Strict):
    """Control loop settings."""

    rate_hz: float = Field(default=30.0, gt=0, le=1000)
    max_rate_hz: float = Field(default=100.0, gt=0, le=1000)
    ensemble_k: float = Field(default=0.01, ge=0, le=10)
    action_deadline_s: float = Field(default=0.5, gt=0, le=60)
    # Actions are sent this long before they are due, and those due sooner are dropped
    # (docs/runtime.md, "Execution latency"). None: measured from the serial round trip at start-up.
    exec_latency_s: float | None = Field(default=None, ge=0, le=1)


class InstallSpec(_Strict):
    """How `tinyvla-edge install` provisions a device for this profile (see docs/jetson.md).

    Every field can be overridden on the command line or by environment; None means "derive it
    from the device" (the service user from sudo, swap from RAM and model size, and so on).
    Values that reach unit files, udev rules or commands are checked against SAFE_VALUES.
    """

    user: Annotated[str | None, _safe("user", "install.user")] = Field(
        default=None, description="non-root user the service runs as; None = $SUDO_USER, else the login user")
    index_url: Annotated[str | None, _safe("url", "install.index_url")] = Field(
        default=None,
        description="pip index for JetPack wheels; {platform} and {cuda_tag} are filled in (jp6/cu126, "
        "sbsa/cu130). None = the Jetson AI Lab community index. Plain PyPI torch is wrong on a Jetson",
    )
    venv: Annotated[str | None, _safe("path", "install.venv")] = Field(
        default=None, description="virtual environment path on the device")
    swap_gb: float | None = Field(default=None, ge=0, le=256, description="swap file size; None = from RAM and model")
    realsense: Literal["auto", "wheel", "rsusb-source", "none"] = "auto"
    realsense_source: str | None = Field(
        default=None, description="librealsense git URL or local checkout for the RSUSB source build; "
        "None = the upstream repository")
    realsense_ref: Annotated[str, _safe("git-ref", "install.realsense_ref")] = Field(
        default="v2.58.4", description="librealsense release tag for the source build (the version of the "
        "RSUSB wheel the other JetPacks get)")
    cpu_affinity: Annotated[str | None, _safe("cpu-list", "install.cpu_affinity")] = Field(
        default=None, description="CPU list for the service; None = mode's cores minus CPU0")
    rt_priority: int = Field(default=50, ge=1, le=99, description="SCHED_FIFO priority when the RT probe succeeds")
    nice: int = Field(default=-10, ge=-20, le=19, description="niceness when real-time scheduling is unavailable")
    enable_service: bool = Field(default=False, description="enable tinyvla-edge.service at boot")

    @model_validator(mode="after")
    def _source_is_safe(self) -> "InstallSpec":
        if self.realsense_source is not None:
            safe_source(self.realsense_source, "install.realsense_source")
        return self


class Profile(_Strict):
    """A deployment profile."""

    name: Name
    description: Annotated[str, AfterValidator(_single_line)] = ""
    target: str = Field(pattern=r"^[a-z0-9][a-z0-9,| -]{0,199}$",
                        description="module token (e.g. p3767-0003), 'any-x86' or 'any'")
    power: PowerSpec = PowerSpec()
    model: ModelSpec = ModelSpec()
    control: ControlSpec = ControlSpec()
    cameras: list[CameraSpec] = Field(default_factory=list, max_length=16)
    arm: ArmSpec = ArmSpec()
    install: InstallSpec = InstallSpec()

    @model_validator(mode="after")
    def _rate_within_max(self) -> "Profile":
        if self.control.rate_hz > self.control.max_rate_hz:
            raise ValueError("control.rate_hz exceeds control.max_rate_hz")
        return self


def profile_dirs() -> list[Path]:
    """Where profiles are looked up by name: $TINYVLA_EDGE_PROFILES, then the repo's profiles/."""
    dirs = [Path(p) for p in os.environ.get(PROFILE_DIR_ENV, "").split(os.pathsep) if p]
    return dirs + [REPO_PROFILE_DIR]


def available_profiles() -> list[str]:
    """Names of every profile found on the search path."""
    names = {p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """A profile name (searched in profile_dirs) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise ProfileError(f"profile file not found: {candidate}")
        return candidate
    # A name is looked up only as a plain file name: `../../elsewhere` is not a profile name.
    is_name = re.fullmatch(SAFE_VALUES["name"][0], str(name_or_path)) is not None
    for d in profile_dirs() if is_name else []:
        path = d / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    known = ", ".join(available_profiles()) or "none"
    raise ProfileError(f"unknown profile {str(name_or_path)!r} (available: {known})")


def load_profile(name_or_path: str | Path) -> Profile:
    """Load and validate a profile; errors name the file and the offending field."""
    path = resolve_profile_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a YAML mapping")
    data.setdefault("name", path.stem)
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ProfileError(f"{path}: field '{field}': {first['msg']}") from e
