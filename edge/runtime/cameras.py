"""The cameras `run` opens: the bundle's cameras, each on the device `--camera` names, streaming
what the profile's `cameras` say (size, rate, depth).

`--camera` picks devices only: a spec that asks for another size or rate than the profile is
refused, and depth is on where the profile's camera or the spec (`?depth=1`) asks for it.
"""

from __future__ import annotations

from typing import Sequence

from drivers.camera.configs import CameraConfig, StreamSettings, parse_camera_spec, split_named_spec
from edge.config import CameraSpec, Profile
from edge.runtime.startup import RunRefused


def stream_settings(camera: CameraSpec) -> StreamSettings:
    """What the driver streams for a profile camera (`--camera` picks only the device)."""
    return StreamSettings(camera.width, camera.height, camera.fps, camera.depth)


def profile_streams(profile: Profile | None, camera_names: Sequence[str]) -> dict[str, StreamSettings]:
    """The profile's stream for each bundle camera: by name, or by position when the names
    differ (profiles list cameras in the bundle's order). {} when the profile lists no cameras."""
    if profile is None or not profile.cameras:
        return {}
    listed = {c.name: stream_settings(c) for c in profile.cameras}
    if all(name in listed for name in camera_names):
        return {name: listed[name] for name in camera_names}
    if len(profile.cameras) != len(camera_names):
        raise RunRefused(f"profile {profile.name} lists {len(profile.cameras)} cameras ({', '.join(listed)}), "
                         f"the bundle has {len(camera_names)} ({', '.join(camera_names)}); use the bundle's profile")
    return {name: stream_settings(c) for name, c in zip(camera_names, profile.cameras)}


def match_cameras(specs: list[str], camera_names: tuple[str, ...], profile: Profile | None = None) -> list[tuple[str, CameraConfig]]:
    """`--camera` values → (name, config) in the bundle's camera order, streams from `profile`.

    NAME=SPEC names a camera; an unnamed SPEC takes the next bundle camera not named explicitly.
    Every bundle camera must be given exactly once and no other.
    """
    named: dict[str, str] = {}
    unnamed: list[str] = []
    for text in specs:
        name, spec = split_named_spec(text)
        if name is None:
            unnamed.append(spec)
        elif name in named:
            raise RunRefused(f"camera {name} is given twice")
        else:
            named[name] = spec
    unknown = [n for n in named if n not in camera_names]
    if unknown:
        raise RunRefused(f"camera {unknown[0]!r} is not in the bundle (its cameras: {', '.join(camera_names)})")
    free = [n for n in camera_names if n not in named]
    if len(unnamed) > len(free):
        raise RunRefused(f"{len(specs)} cameras given; the bundle has {len(camera_names)} ({', '.join(camera_names)})")
    named.update(zip(free, unnamed))
    missing = [n for n in camera_names if n not in named]
    if missing:
        raise RunRefused(f"the bundle needs camera {missing[0]!r} (cameras: {', '.join(camera_names)}); "
                         f"add --camera {missing[0]}=SPEC")
    streams = profile_streams(profile, camera_names)
    return [(n, parse_camera_spec(named[n], streams.get(n))) for n in camera_names]
