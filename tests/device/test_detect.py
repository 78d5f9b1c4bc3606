"""Detection from staged roots built from the reference's verbatim sample files."""

from __future__ import annotations

import pytest

from edge.device.detect import (
    JETPACK_BY_L4T,
    UnsupportedDevice,
    cuda_tag,
    detect,
    format_cpu_list,
    parse_compatible,
    parse_cpu_list,
    parse_tegra_release,
    require_supported,
    wheel_platform,
)
from tests.device.jetson_tree import (
    AGX_ORIN_64GB_JP621,
    AGX_ORIN_JP512,
    AGX_THOR_JP70,
    FIXTURES,
    ORIN_NANO_SUPER_JP62,
    ORIN_NX_16GB_JP61,
    X86_DEV_BOX,
)


@pytest.mark.parametrize("name, version, board", [
    ("R35.4.1", "35.4.1", "t186ref"),
    ("R35.5.0", "35.5.0", "t186ref"),
    ("R36.4.3", "36.4.3", "generic"),  # the full 4-line file: only the first line counts
    ("R36.4.4", "36.4.4", "generic"),
    ("R38.2.0", "38.2.0", "generic"),
])
def test_nv_tegra_release_first_line_gives_l4t(name, version, board):
    release = parse_tegra_release((FIXTURES / "nv_tegra_release" / name).read_text())
    assert (release.version, release.board) == (version, board)


def test_nv_tegra_release_keeps_the_double_space_date_and_rejects_other_shapes():
    text = (FIXTURES / "nv_tegra_release" / "R35.4.1").read_text()
    assert "Tue Aug  1 19:57:35" in text  # byte-exact fixture
    with pytest.raises(UnsupportedDevice, match="cannot parse"):
        parse_tegra_release("R36 release, REVISION: 4.3")


@pytest.mark.parametrize("l4t, jetpack", [("35.4.1", "5.1.2"), ("36.4.0", "6.1"), ("36.4.3", "6.2"),
                                          ("36.4.4", "6.2.1"), ("36.5.0", "6.2.2"), ("38.2.0", "7.0"),
                                          ("39.2.0", "7.2")])
def test_jetpack_map(l4t, jetpack):
    assert JETPACK_BY_L4T[l4t] == jetpack


def test_compatible_with_nuls_and_as_jetson_stats_prints_it():
    nano = parse_compatible((FIXTURES / "device-tree/compatible-orin-nano-super").read_bytes().decode())
    assert (nano.carrier, nano.module, nano.super_variant, nano.soc) == ("p3768-0000", "p3767-0005", True, "tegra234")
    printed = (FIXTURES / "device-tree/compatible-thor-printed.txt").read_text()
    thor = parse_compatible(printed)
    assert (thor.carrier, thor.module, thor.super_variant, thor.soc) == ("p4071-0000", "p3834-0008", False, "tegra264")


@pytest.mark.parametrize("spec, module, name, jetpack, python, cuda", [
    (ORIN_NANO_SUPER_JP62, "p3767-0005", "Jetson Orin Nano 8GB (devkit module) Super", "6.2", "3.10", "cu126"),
    (ORIN_NX_16GB_JP61, "p3767-0000", "Jetson Orin NX 16GB", "6.1", "3.10", "cu126"),
    (AGX_ORIN_64GB_JP621, "p3701-0005", "Jetson AGX Orin 64GB", "6.2.1", "3.10", "cu126"),
    (AGX_THOR_JP70, "p3834-0008", "Jetson AGX Thor (devkit module)", "7.0", "3.12", "cu130"),
])
def test_supported_devices(staged, spec, module, name, jetpack, python, cuda):
    info = require_supported(detect(staged(spec), {}))
    assert (info.module, info.display_name, info.jetpack, info.python, cuda_tag(info)) == (
        module, name, jetpack, python, cuda)
    assert info.jetpack_exact and not info.warnings
    assert info.model == spec.model  # display only, straight from the device tree
    assert info.ram_mb == spec.ram_mb and info.arch == "aarch64"
    assert wheel_platform(info) == ("sbsa" if jetpack.startswith("7") else "jp6")
    assert info.possible_cpus == list(range(spec.cpus))


def test_versions_come_from_the_installed_files(staged):
    info = detect(staged(AGX_THOR_JP70), {})
    assert (info.cuda, info.cudnn, info.tensorrt, info.expected_cuda) == ("13.0.48", "9.12.0", "10.13.3", "13.0")


def test_power_modes_and_current_mode(staged):
    nano = detect(staged(ORIN_NANO_SUPER_JP62), {})
    assert {m.name: m.id for m in nano.power_modes} == {"15W": 0, "25W": 1, "MAXN_SUPER": 2, "7W": 3}
    assert (nano.default_mode, nano.current_mode, nano.mode_name(2)) == (1, 2, "MAXN_SUPER")
    assert nano.nvpmodel_conf == "/etc/nvpmodel/nvpmodel_p3767_0003_super.conf"  # symlink resolved in the tree
    agx = detect(staged(AGX_ORIN_64GB_JP621), {})
    assert (agx.current_mode, agx.online_cpus) == (2, list(range(8)))  # DEFAULT MODE_30W offlines 8-11


def test_jetpack5_is_refused_with_why_and_what_to_do(staged):
    info = detect(staged(AGX_ORIN_JP512), {})
    assert info.status == "refused" and info.jetpack == "5.1.2"
    with pytest.raises(UnsupportedDevice, match=r"JetPack 5\.1\.2 .*Python 3\.8.*reflash with JetPack 6\.2"):
        require_supported(info)


def test_unknown_revision_falls_back_to_the_major_version_with_a_warning(staged):
    info = detect(staged(ORIN_NANO_SUPER_JP62), {"TINYVLA_EDGE_L4T": "36.9.1"})
    assert info.status == "supported" and info.jetpack == "6.x" and not info.jetpack_exact
    assert "36.9.1 is not in the JetPack table" in info.warnings[0]
    unknown_major = detect(staged(ORIN_NANO_SUPER_JP62, "r40"), {"TINYVLA_EDGE_L4T": "40.0.0"})
    assert unknown_major.status == "refused" and "not a release tinyvla-edge knows" in unknown_major.reason


def test_environment_overrides_make_detection_testable(staged):
    root = staged(ORIN_NANO_SUPER_JP62)
    info = detect(None, {"TINYVLA_EDGE_ROOT": str(root), "TINYVLA_EDGE_PYTHON": "3.12"})
    assert info.root == str(root) and info.python == "3.12"
    assert detect(root, {"TINYVLA_EDGE_ARCH": "x86_64"}).status == "not-jetson"


def test_l4t_from_dpkg_when_the_release_file_is_missing(staged):
    root = staged(ORIN_NX_16GB_JP61)
    (root / "etc/nv_tegra_release").unlink()
    info = detect(root, {"TINYVLA_EDGE_ARCH": "aarch64"})
    assert (info.l4t, info.jetpack) == ("36.4.0", "6.1")


def test_non_jetson_root(staged):
    info = detect(staged(X86_DEV_BOX), {})
    assert info.status == "not-jetson" and not info.is_jetson and "no /etc/nv_tegra_release" in info.reason
    with pytest.raises(UnsupportedDevice, match="not a Jetson"):
        require_supported(info)


def test_conf_that_does_not_match_the_module_is_a_warning(staged):
    root = staged(ORIN_NANO_SUPER_JP62)
    (root / "etc/nvpmodel.conf").unlink()
    (root / "etc/nvpmodel.conf").symlink_to("/etc/nvpmodel/nvpmodel_p3701_0000.conf")
    (root / "etc/nvpmodel/nvpmodel_p3701_0000.conf").write_text(
        (FIXTURES / "nvpmodel/nvpmodel_p3701_0000.conf").read_text())
    assert "expected nvpmodel_p3767_0003_super.conf" in detect(root, {}).warnings[0]


@pytest.mark.parametrize("text, cpus", [("0-5", [0, 1, 2, 3, 4, 5]), ("0-3,6", [0, 1, 2, 3, 6]), ("0", [0]), ("", [])])
def test_cpu_lists_round_trip(text, cpus):
    assert parse_cpu_list(text) == cpus
    assert format_cpu_list(cpus) == text
