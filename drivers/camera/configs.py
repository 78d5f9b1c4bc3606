"""Camera configurations (one frozen, self-validating dataclass per backend) and their specs.

A spec is the string users type (`--camera`, profiles):

    realsense                       the only RealSense connected
    realsense:SERIAL                a RealSense by serial number
    realsense[:SERIAL]:WxH[@FPS]    ... at a color (and depth) resolution and rate
    recording:PATH[?loop][&realtime=0]   a .bag or .db3 RealSense recording
    synthetic[:WxH[@FPS]]           a deterministic moving pattern

Every camera is color-only unless asked for depth with `?depth=1` (or a profile camera's
`depth: true`): depth costs USB3 bandwidth, and a RealSense aligns it to color on the host CPU
for every frame. Several cameras are named: `left=realsense:123 right=realsense:456`.

A deployment profile fixes each camera's stream (size, rate, depth): `parse_camera_spec(text,
stream)` takes those from `StreamSettings` and the spec picks the device; a spec that asks for
another size or rate than the profile is refused rather than silently changed. Parsing imports
no SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Union

from drivers.errors import SpecError

CAMERA_SPEC_SYNTAX = ("realsense, realsense:SERIAL, realsense[:SERIAL]:WxH@FPS, recording:PATH, synthetic[:WxH@FPS], "
                      "each with ?depth=1 for depth")
RECORDING_SUFFIXES = (".bag", ".db3")
_MODE = re.compile(r"^(\d+)x(\d+)(?:@(\d+(?:\.\d+)?))?$")
_SERIAL = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def _check_size(width: int, height: int, what: str) -> None:
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise SpecError(f"{what} size {width}x{height} is not within 1..8192")


def _check_fps(fps: float) -> None:
    if not 0 < fps <= 1000:
        raise SpecError(f"fps {fps} is not within (0, 1000]")


def _depth_option(depth: bool) -> str:
    return "?depth=1" if depth else ""


@dataclass(frozen=True)
class StreamSettings:
    """What a deployment profile fixes for one camera: color size and rate, and whether it
    streams depth. Recordings take only `depth` from it (they play what was recorded)."""

    width: int
    height: int
    fps: float
    depth: bool = False


@dataclass(frozen=True)
class SyntheticConfig:
    """A generated moving pattern (with depth when asked): demos and profiling without hardware."""

    width: int = 640
    height: int = 480
    fps: float = 30.0
    depth: bool = False

    def __post_init__(self) -> None:
        _check_size(self.width, self.height, "synthetic")
        _check_fps(self.fps)

    @property
    def spec(self) -> str:
        return f"synthetic:{self.width}x{self.height}@{self.fps:g}" + _depth_option(self.depth)


@dataclass(frozen=True)
class RealSenseConfig:
    """A live RealSense, color only unless `depth`: depth is then aligned to color, its size
    defaulting to the color size."""

    serial: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    depth: bool = False
    depth_width: int | None = None
    depth_height: int | None = None
    warmup_frames: int = 30  # auto-exposure settles and the first frames after start are often corrupt
    connect_retries: int = 3  # the last try follows a hardware_reset
    first_frame_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.serial is not None and not _SERIAL.match(self.serial):
            raise SpecError(f"RealSense serial {self.serial!r} should be letters and digits, e.g. 123456789012")
        _check_size(self.width, self.height, "color")
        if (self.depth_width is None) != (self.depth_height is None):
            raise SpecError("set both depth_width and depth_height, or neither")
        if self.depth_width is not None:
            _check_size(self.depth_width, self.depth_height, "depth")
        if not (isinstance(self.fps, int) and 1 <= self.fps <= 300):
            raise SpecError(f"RealSense fps must be a whole number (6, 15, 30, 60, 90), got {self.fps}")
        if self.warmup_frames < 0 or self.connect_retries < 1 or self.first_frame_timeout_s <= 0:
            raise SpecError("warmup_frames >= 0, connect_retries >= 1 and first_frame_timeout_s > 0 are required")

    @property
    def depth_size(self) -> tuple[int, int]:
        if self.depth_width is None:
            return self.width, self.height
        return self.depth_width, self.depth_height

    @property
    def spec(self) -> str:
        serial = f":{self.serial}" if self.serial else ""
        return f"realsense{serial}:{self.width}x{self.height}@{self.fps}" + _depth_option(self.depth)


@dataclass(frozen=True)
class RecordingConfig:
    """A RealSense recording (.bag, or .db3 as librealsense >= 2.57 writes) played through the SDK.

    real_time=False hands out every frame in order, each after the previous one was taken
    (tests, capture); real_time=True plays at the recorded pace like a live camera. Only the
    color stream plays unless `depth` (then the recorded depth, aligned to color).
    """

    path: Path
    loop: bool = False
    real_time: bool = True
    depth: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if not str(self.path) or str(self.path) == ".":
            raise SpecError("recording spec needs a path: recording:PATH")
        if self.path.suffix.lower() not in RECORDING_SUFFIXES:
            raise SpecError(f"{self.path} is not a RealSense recording: expected a .bag or .db3 file")

    @property
    def spec(self) -> str:
        options = [name for name, on in (("loop", self.loop), ("realtime=0", not self.real_time), ("depth=1", self.depth)) if on]
        return f"recording:{self.path}" + (f"?{'&'.join(options)}" if options else "")


CameraConfig = Union[RealSenseConfig, RecordingConfig, SyntheticConfig]

# The default name of an unnamed camera, by config type.
DEFAULT_NAMES: dict[type, str] = {RealSenseConfig: "realsense", RecordingConfig: "recording", SyntheticConfig: "synthetic"}


def _parse_mode(text: str, spec: str) -> tuple[int, int, float | None]:
    match = _MODE.match(text)
    if not match:
        raise SpecError(f"bad resolution {text!r} in camera spec {spec!r}: expected WxH or WxH@FPS, e.g. 640x480@30")
    width, height, fps = match.groups()
    return int(width), int(height), None if fps is None else float(fps)


def _split_options(rest: str | None, spec: str, allowed: dict[str, tuple[str, ...]]) -> tuple[str | None, dict[str, str]]:
    """'PATH?loop&depth=1' → ('PATH', {'loop': '', 'depth': '1'}); SpecError for an option or
    value not in `allowed` (option → accepted values)."""
    if rest is None or "?" not in rest:
        return rest, {}
    head, query = rest.rsplit("?", 1)
    options = {}
    for option in query.split("&"):
        key, _, value = option.partition("=")
        if value not in allowed.get(key, ()):
            valid = ", ".join(k if "" in values else f"{k}={'|'.join(values)}" for k, values in allowed.items())
            raise SpecError(f"unknown camera option {option!r} in {spec!r}; valid: {valid}")
        options[key] = value
    return head or None, options


_DEPTH_OPTION = {"depth": ("", "1")}


def _wants_depth(options: dict[str, str], stream: StreamSettings | None) -> bool:
    """Depth when the spec asks (`?depth=1`) or the profile does."""
    asked = options.get("depth") in ("", "1")
    return asked or (stream is not None and stream.depth)


def _stream_fields(mode: tuple[int, int, float | None] | None, stream: StreamSettings | None, spec: str) -> dict:
    """Width, height and fps from the profile's stream, or from the spec's mode without one; a
    spec whose mode differs from the profile's is refused (the profile says what is deployed)."""
    if stream is None:
        if mode is None:
            return {}
        width, height, fps = mode
        return {"width": width, "height": height, **({} if fps is None else {"fps": fps})}
    if mode is not None and (mode[:2] != (stream.width, stream.height) or mode[2] not in (None, stream.fps)):
        raise SpecError(f"{spec!r} asks for {mode[0]}x{mode[1]}" + (f"@{mode[2]:g}" if mode[2] else "")
                        + f" but the profile streams this camera at {stream.width}x{stream.height}@{stream.fps:g}; "
                        "--camera picks the device: drop the size or change the profile's cameras")
    return {"width": stream.width, "height": stream.height, "fps": stream.fps}


def _parse_realsense(rest: str | None, spec: str, stream: StreamSettings | None) -> RealSenseConfig:
    rest, options = _split_options(rest, spec, _DEPTH_OPTION)
    parts = [] if rest is None else rest.split(":")
    mode = _parse_mode(parts.pop(), spec) if parts and _MODE.match(parts[-1]) else None
    fields = _stream_fields(mode, stream, spec)
    if "fps" in fields:
        if fields["fps"] != int(fields["fps"]):
            raise SpecError(f"RealSense fps must be a whole number in {spec!r}")
        fields["fps"] = int(fields["fps"])
    if len(parts) > 1 or (parts and not parts[0]):
        raise SpecError(f"bad RealSense spec {spec!r}: expected realsense[:SERIAL][:WxH@FPS][?depth=1]")
    if parts:
        fields["serial"] = parts[0]
    return RealSenseConfig(**fields, depth=_wants_depth(options, stream))


def _parse_recording(rest: str | None, spec: str, stream: StreamSettings | None) -> RecordingConfig:
    path, options = _split_options(rest, spec, {"loop": ("", "1", "0"), "realtime": ("1", "0"), **_DEPTH_OPTION})
    if not path:
        raise SpecError("recording spec needs a path: recording:PATH")
    return RecordingConfig(Path(path).expanduser(), loop=options.get("loop", "0") != "0",
                           real_time=options.get("realtime", "1") == "1", depth=_wants_depth(options, stream))


def _parse_synthetic(rest: str | None, spec: str, stream: StreamSettings | None) -> SyntheticConfig:
    rest, options = _split_options(rest, spec, _DEPTH_OPTION)
    fields = _stream_fields(_parse_mode(rest, spec) if rest else None, stream, spec)
    return SyntheticConfig(**fields, depth=_wants_depth(options, stream))


_PARSERS = {"realsense": _parse_realsense, "recording": _parse_recording, "synthetic": _parse_synthetic}


def parse_camera_spec(text: str, stream: StreamSettings | None = None) -> CameraConfig:
    """The config a spec string names; SpecError (one line, with the valid forms) otherwise.
    With `stream` (a profile's camera) the size, rate and depth come from it (see the module's
    docstring)."""
    spec = text.strip()
    kind, sep, rest = spec.partition(":")
    if "?" in kind:  # options straight after the kind: realsense?depth=1
        kind, query = kind.split("?", 1)
        sep, rest = ":", "?" + query
    parser = _PARSERS.get(kind.lower())
    if parser is None:
        raise SpecError(f"unknown camera spec {text!r}; valid: {CAMERA_SPEC_SYNTAX}")
    return parser(rest if sep else None, spec, stream)


def split_named_spec(text: str) -> tuple[str | None, str]:
    """'left=realsense:1' -> ('left', 'realsense:1'); 'synthetic' -> (None, 'synthetic')."""
    name, sep, spec = text.partition("=")
    if sep and _NAME.match(name.strip()):
        return name.strip(), spec.strip()
    return None, text.strip()


def parse_named_specs(specs: Iterable[str] | Mapping[str, str | CameraConfig]) -> dict[str, CameraConfig]:
    """Named camera configs from `--camera` values ('name=spec' or 'spec') or a {name: spec} mapping.

    An unnamed camera is named after its kind (realsense, recording, synthetic); two cameras
    with the same name are refused.
    """
    if isinstance(specs, str):
        specs = [specs]
    pairs = list(specs.items()) if isinstance(specs, Mapping) else [split_named_spec(text) for text in specs]
    configs: dict[str, CameraConfig] = {}
    for name, spec in pairs:
        config = spec if not isinstance(spec, str) else parse_camera_spec(spec)
        if type(config) not in DEFAULT_NAMES:
            raise SpecError(f"camera {name!r}: {config!r} is not a camera config or spec")
        name = name or DEFAULT_NAMES[type(config)]
        if not _NAME.match(name):
            raise SpecError(f"camera name {name!r} must start with a letter and use letters, digits, - or _")
        if name in configs:
            raise SpecError(f"two cameras named {name!r}; name them, e.g. --camera left=SPEC --camera right=SPEC")
        configs[name] = config
    if not configs:
        raise SpecError(f"no camera given; valid: {CAMERA_SPEC_SYNTAX}")
    return configs
