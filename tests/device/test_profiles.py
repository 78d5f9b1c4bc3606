"""The shipped deployment profiles: valid, matched to their device, values as argued in comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import REPO_PROFILE_DIR, load_profile
from edge.device.detect import detect
from edge.device.nvpmodel import read_conf
from edge.install import profile_matches
from tests.device.jetson_tree import SUPPORTED, X86_DEV_BOX

SHIPPED = ["cpu-dev", "orin-nano-8gb", "orin-nx-16gb", "agx-orin-64gb", "thor"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_validates(name):
    profile = load_profile(name)
    assert profile.name == name and profile.control.rate_hz <= profile.control.max_rate_hz


@pytest.mark.parametrize("spec", SUPPORTED + (X86_DEV_BOX,), ids=lambda s: s.key)
def test_each_device_matches_exactly_its_profile_and_the_mode_exists_there(staged, spec):
    info = detect(staged(spec), {})
    assert [n for n in SHIPPED if profile_matches(load_profile(n).target, info)] == [spec.profile]
    mode = load_profile(spec.profile).power.mode
    if mode:
        assert read_conf(info.root).by_name(mode)  # resolvable by name on that module's conf


def test_profile_choices():
    nano, nx, agx, thor = (load_profile(n) for n in ("orin-nano-8gb", "orin-nx-16gb", "agx-orin-64gb", "thor"))
    assert (nano.model.variant, nano.model.head_steps, nano.power.mode) == ("S", 2, "25W")
    assert nano.model.vision.precision == nano.model.language.precision == "int8"
    assert nx.model.variant == "B"
    assert (agx.model.variant, agx.model.vision.precision, agx.power.mode) == ("H", "fp16", "MAXN")
    assert thor.target == "p3834-0008"
    for profile in (nano, nx, agx, thor):
        assert profile.power.lock_clocks and len(profile.cameras) >= 2  # TinyVLA needs two views


@pytest.mark.parametrize("name", SHIPPED[1:])
def test_profile_comments_argue_from_reference_numbers(name):
    text = (REPO_PROFILE_DIR / f"{name}.yaml").read_text()
    assert "TFLOP" in text and "CLIP-L/336" in text


def test_docs_cover_every_profile_and_field():
    docs = (Path(__file__).resolve().parents[2] / "docs/profiles.md").read_text()
    for name in SHIPPED:
        assert f"`{name}`" in docs
    for field in ("power.mode", "lock_clocks", "head_steps", "install.index_url", "install.swap_gb"):
        assert field in docs
