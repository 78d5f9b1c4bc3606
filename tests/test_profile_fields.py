"""Every profile field is applied: a field that is validated but never read fails here, and the
fields this suite owns are shown to change behaviour (the field matrix)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from drivers.camera.configs import RealSenseConfig, RecordingConfig, SyntheticConfig
from drivers.errors import SpecError
from edge.cli import main
from edge.config import ModelSpec, Profile, load_profile
from edge.errors import ProfileError
from edge.runtime.cameras import match_cameras
from edge.runtime.startup import RunRefused

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "quantize", "drivers")

# Fields no module reads yet, each with who reads it and why it may wait. Keep this short.
NOT_READ_YET = {
    "power.budget_w": "read by edge/profiling/checks.py (cliux): a profile warning when measured power exceeds it",
}


def schema_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    """Every field path of the schema, nested models (and lists of them) included."""
    for name, field in model.model_fields.items():
        path = prefix + (name,)
        yield path
        for kind in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from schema_fields(kind, path)


def _attribute(name: str) -> re.Pattern:
    return re.compile(r"\." + re.escape(name) + r"\b")


def is_read(path: tuple[str, ...], sources: list[str]) -> bool:
    """Read: some module outside the schema reaches the field's parent (`.model`, `.cameras`) and
    reads the field (`.chunk_size`). A name check, not a proof, but a dead field fails it."""
    wanted = [_attribute(path[-1])] + ([_attribute(path[-2])] if len(path) > 1 else [])
    return any(all(p.search(text) for p in wanted) for text in sources)


def test_every_profile_field_is_read_somewhere():
    sources = [p.read_text() for package in PACKAGES for p in (ROOT / package).rglob("*.py")
               if p != ROOT / "edge" / "config.py"]
    fields = {".".join(path): path for path in schema_fields(Profile)}
    assert set(NOT_READ_YET) <= set(fields), "the allow-list names a field the schema no longer has"
    dead = [name for name, path in fields.items() if name not in NOT_READ_YET and not is_read(path, sources)]
    assert not dead, f"validated but never read: {dead}; apply them or remove them from edge/config.py"


def test_the_read_check_catches_a_dead_field():
    sources = ["def rate(profile):\n    return profile.control.rate_hz\n"]
    assert is_read(("control", "rate_hz"), sources)
    assert not is_read(("control", "ensemble_k"), sources)


# -- model.chunk_size -------------------------------------------------------------------------------

def test_a_bundle_whose_chunk_size_differs_from_the_profile_is_refused():
    ModelSpec(chunk_size=16).check_chunk_size(16)
    with pytest.raises(ProfileError, match="predicts 8 actions per chunk, the profile's model.chunk_size is 16"):
        ModelSpec(chunk_size=16).check_chunk_size(8)


CHUNK_8_PROFILE = """
name: chunk-8
target: any
model: {head_steps: 2, chunk_size: 8}
cameras:
  - {name: cam0, width: 32, height: 24, fps: 30}
  - {name: cam1, width: 32, height: 24, fps: 30}
"""


def test_run_refuses_the_tiny_policy_under_a_profile_with_another_chunk_size(tiny_output, tmp_path, capsys):
    profile = tmp_path / "chunk-8.yaml"
    profile.write_text(CHUNK_8_PROFILE)
    code = main(["run", str(tiny_output), "--camera", "cam0=synthetic", "--camera", "cam1=synthetic", "--arm", "sim",
                 "--instruction", "pick", "--profile", str(profile), "--inference-thread", "--duration", "1"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1, err
    assert "model.chunk_size is 8" in err and "Traceback" not in err


# -- cameras[]: name, width, height, fps, depth --------------------------------------------------------

PROFILE_CAMERAS = """
name: two-views
target: any
cameras:
  - {name: left, width: 320, height: 240, fps: 15, depth: false}
  - {name: right, width: 64, height: 48, fps: 30, depth: true}
"""


@pytest.fixture
def two_views(tmp_path) -> Profile:
    path = tmp_path / "two-views.yaml"
    path.write_text(PROFILE_CAMERAS)
    return load_profile(path)


def test_cameras_stream_what_the_profile_says_on_the_devices_the_specs_name(two_views):
    cams = dict(match_cameras(["right=realsense:123", "left=recording:/data/a.db3"], ("left", "right"), two_views))
    assert cams["right"] == RealSenseConfig(serial="123", width=64, height=48, fps=30, depth=True)
    assert cams["left"] == RecordingConfig(Path("/data/a.db3"), depth=False)  # a recording plays its own size


def test_a_spec_may_add_depth_but_not_change_the_profiles_size(two_views):
    cams = dict(match_cameras(["left=synthetic?depth=1", "right=synthetic:64x48@30"], ("left", "right"), two_views))
    assert cams["left"] == SyntheticConfig(320, 240, 15, depth=True)
    assert cams["right"] == SyntheticConfig(64, 48, 30, depth=True)
    with pytest.raises(SpecError, match="asks for 640x480@30 but the profile streams this camera at 320x240@15"):
        match_cameras(["left=synthetic:640x480@30", "right=synthetic"], ("left", "right"), two_views)


def test_profile_cameras_follow_the_bundles_order_when_their_names_differ(two_views):
    cams = match_cameras(["synthetic", "synthetic"], ("cam0", "cam1"), two_views)
    assert [(n, c.width, c.depth) for n, c in cams] == [("cam0", 320, False), ("cam1", 64, True)]
    with pytest.raises(RunRefused, match="profile two-views lists 2 cameras .* the bundle has 3"):
        match_cameras(["synthetic"] * 3, ("a", "b", "c"), two_views)


def test_without_a_profile_the_spec_says_everything_and_depth_is_off():
    (_, config), = match_cameras(["realsense:123:848x480@15"], ("front",))
    assert config == RealSenseConfig(serial="123", width=848, height=480, fps=15, depth=False)
