"""Deployment profiles: typed schema, loaded from `profiles/*.yaml`.

A profile says how a bundle is deployed on one kind of device: power mode, engines and
precision per component, head steps, control rate, cameras and arm limits. See docs/profiles.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ProfileError

Engine = Literal["torch", "onnxruntime", "tensorrt", "bitsandbytes"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]

PROFILE_DIR_ENV = "TINYVLA_EDGE_PROFILES"
REPO_PROFILE_DIR = Path(__file__).resolve().parents[1] / "profiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    mode: str | None = None
    lock_clocks: bool = False
    budget_w: float | None = Field(default=None, gt=0)


class CameraSpec(_Strict):
    """One camera the policy expects, in the bundle's camera order."""

    name: str
    width: int = Field(default=640, gt=0)
    height: int = Field(default=480, gt=0)
    fps: int = Field(default=30, gt=0)
    depth: bool = False


class ArmSpec(_Strict):
    """Arm connection and limit overrides (intersected with the arm's own INFO limits)."""

    baud: int = 1_000_000
    usb_serial: str | None = None
    usb_vendor: str | None = None
    usb_product: str | None = None
    lower: list[float] | None = None
    upper: list[float] | None = None
    max_step: list[float] | None = None
    on_shutdown: Literal["estop", "hold"] = "estop"


class ModelSpec(_Strict):
    """What the bundle is expected to be and how its head is sampled."""

    variant: Literal["S", "B", "H", "tiny", "any"] = "any"
    vision: ComponentSpec = ComponentSpec()
    language: ComponentSpec = ComponentSpec()
    head: ComponentSpec = ComponentSpec()
    head_steps: int = Field(default=10, ge=1, le=100)
    chunk_size: int = Field(default=16, gt=0)
    max_prompt_tokens: int = Field(default=64, gt=0)


class ControlSpec(_Strict):
    """Control loop settings."""

    rate_hz: float = Field(default=30.0, gt=0)
    max_rate_hz: float = Field(default=100.0, gt=0)
    ensemble_k: float = Field(default=0.01, ge=0)
    action_deadline_s: float = Field(default=0.5, gt=0)


class InstallSpec(_Strict):
    """How `tinyvla-edge install` provisions a device for this profile (see docs/jetson.md).

    Every field can be overridden on the command line or by environment; None means "derive it
    from the device" (the service user from sudo, swap from RAM and model size, and so on).
    """

    user: str | None = Field(default=None, description="non-root user the service runs as")
    index_url: str | None = Field(
        default=None,
        description="pip index for JetPack wheels; {platform} and {cuda_tag} are filled in "
        "(jp6/cu126, sbsa/cu130). No host is built in: plain PyPI torch is wrong on a Jetson",
    )
    venv: str | None = Field(default=None, description="virtual environment path on the device")
    swap_gb: float | None = Field(default=None, ge=0, description="swap file size; None = from RAM and model")
    realsense: Literal["auto", "wheel", "rsusb-source", "none"] = "auto"
    realsense_source: str | None = Field(
        default=None, description="librealsense git URL or local checkout for the RSUSB source build"
    )
    realsense_ref: str = Field(default="v2.55.1", description="librealsense tag for the source build")
    cpu_affinity: str | None = Field(default=None, description="CPU list for the service; None = mode's cores minus CPU0")
    rt_priority: int = Field(default=50, ge=1, le=99, description="SCHED_FIFO priority when the RT probe succeeds")
    nice: int = Field(default=-10, ge=-20, le=19, description="niceness when real-time scheduling is unavailable")
    enable_service: bool = Field(default=False, description="enable tinyvla-edge.service at boot")


class Profile(_Strict):
    """A deployment profile."""

    name: str
    description: str = ""
    target: str = Field(description="module token (e.g. p3767-0003), 'any-x86' or 'any'")
    power: PowerSpec = PowerSpec()
    model: ModelSpec = ModelSpec()
    control: ControlSpec = ControlSpec()
    cameras: list[CameraSpec] = Field(default_factory=list)
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
    for d in profile_dirs():
        path = d / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    known = ", ".join(available_profiles()) or "none"
    raise ProfileError(f"unknown profile '{name_or_path}' (available: {known})")


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
