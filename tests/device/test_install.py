"""`install` plans on staged roots of each supported device: right content, idempotent, honest."""

from __future__ import annotations

import json
import re
import stat

import pytest

from edge.device.detect import UnsupportedDevice, parse_cpu_list
from edge.device.nvpmodel import PowerModeError
from edge.install import install_device, render_install
from edge.install.context import InstallError
from edge.install.record import read_record
from tests.device.conftest import INDEX_URL, REALSENSE_SOURCE, install_kwargs
from tests.device.jetson_tree import (
    AGX_ORIN_64GB_JP621,
    AGX_ORIN_JP512,
    AGX_THOR_JP70,
    ORIN_NANO_SUPER_JP62,
    ORIN_NX_16GB_JP61,
    SUPPORTED,
    X86_DEV_BOX,
    snapshot,
)


def step(result: dict, name: str) -> dict:
    return next(s for s in result["steps"] if s["name"] == name)


def commands(result: dict, name: str) -> list[str]:
    return [c["command"] for c in step(result, name)["commands"]]


def file_content(result: dict, name: str, path: str) -> str:
    return next(f["content"] for f in step(result, name)["files"] if f["path"] == path)


# Power mode by NAME maps to this module's ID, read from its conf (never hard-coded).
EXPECTED_MODE = {
    ORIN_NANO_SUPER_JP62.key: ("MAXN_SUPER", "25W", 1),
    ORIN_NX_16GB_JP61.key: ("15W", "MAXN", 0),
    AGX_ORIN_64GB_JP621.key: ("MODE_30W", "MAXN", 0),
    AGX_THOR_JP70.key: ("120W", "MAXN", 0),
}


@pytest.mark.parametrize("spec", SUPPORTED, ids=lambda s: s.key)
def test_dry_run_plans_the_power_mode_by_name_and_changes_nothing(staged, spec):
    root = staged(spec)
    before = snapshot(root)
    result = install_device(spec.profile, dry_run=True, **install_kwargs(root))
    assert snapshot(root) == before  # byte-identical: not even the record or the command script
    now, name, mode_id = EXPECTED_MODE[spec.key]
    power = step(result, "power-mode")
    assert power["status"] == "planned"
    assert commands(result, "power-mode") == [f"nvpmodel -m {mode_id}"]
    assert f"{now} -> {name} (ID {mode_id} in /etc/" in power["state"]
    assert result["mode"] == "dry-run" and not result["nothing_to_do"]


@pytest.mark.parametrize("spec", SUPPORTED, ids=lambda s: s.key)
def test_staged_run_is_idempotent(staged, spec):
    root = staged(spec)
    first = install_device(spec.profile, yes=True, **install_kwargs(root))
    assert "service" in first["changed"] and first["mode"] == "staged"
    after_first = snapshot(root)
    second = install_device(spec.profile, yes=True, **install_kwargs(root))
    assert second["nothing_to_do"] and second["changed"] == []
    assert {s["status"] for s in second["steps"]} <= {"ok", "pending", "skipped"}
    assert snapshot(root) == after_first  # record and command script untouched


@pytest.mark.parametrize("spec", SUPPORTED, ids=lambda s: s.key)
def test_service_unit_affinity_fits_the_profiles_power_mode(staged, spec):
    root = staged(spec)
    install_device(spec.profile, **install_kwargs(root))
    unit = (root / "etc/systemd/system/tinyvla-edge.service").read_text()
    from edge.config import load_profile
    from edge.device.nvpmodel import read_conf

    mode = read_conf(root).by_name(load_profile(spec.profile).power.mode)
    affinity = parse_cpu_list(re.search(r"^CPUAffinity=(.+)$", unit, re.M).group(1))
    allowed = set(mode.online_cpus or range(spec.cpus))
    assert affinity and set(affinity) <= allowed and 0 not in affinity
    assert "Restart=on-failure" in unit and "User=robot" in unit
    assert f"run ${{TINYVLA_EDGE_BUNDLE}} --profile {spec.profile} --arm ${{TINYVLA_EDGE_ARM}}" in unit
    env = (root / "etc/tinyvla-edge/run.env").read_text()
    assert "TINYVLA_EDGE_CAMERA_ARGS=--camera left=realsense:640x480@30 --camera right=realsense:640x480@30" in env


def test_affinity_follows_the_mode_not_the_cores_online_now(staged):
    # The NX sits in 15W (cores 0-3 online); the profile's MAXN brings 0-7 online.
    root = staged(ORIN_NX_16GB_JP61)
    result = install_device("orin-nx-16gb", dry_run=True, **install_kwargs(root))
    assert "CPUAffinity=1-7" in file_content(result, "service", "/etc/systemd/system/tinyvla-edge.service")


def test_affinity_override_outside_the_modes_cores_is_refused(staged, tmp_path):
    root = staged(AGX_ORIN_64GB_JP621)
    profile = tmp_path / "agx-15w.yaml"
    profile.write_text("target: p3701-0005\npower: {mode: MODE_15W}\ninstall: {cpu_affinity: '2-9'}\n")
    with pytest.raises(InstallError, match="CPUs 4-9 that the power mode takes offline"):
        install_device(str(profile), dry_run=True, **install_kwargs(root))


def test_realtime_only_where_the_kernel_allows_it(staged):
    root = staged(ORIN_NANO_SUPER_JP62)
    rt = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(root))
    unit = file_content(rt, "service", "/etc/systemd/system/tinyvla-edge.service")
    assert "CPUSchedulingPolicy=fifo" in unit and "CPUSchedulingPriority=50" in unit and "Nice=" not in unit
    # The same tree with RT group scheduling (JetPack 5's kernel config): no FIFO, nice instead.
    config = root / "boot/config-5.15.148-tegra"
    config.write_text(config.read_text().replace("# CONFIG_RT_GROUP_SCHED is not set", "CONFIG_RT_GROUP_SCHED=y"))
    nice = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(root))
    unit = file_content(nice, "service", "/etc/systemd/system/tinyvla-edge.service")
    assert "Nice=-10" in unit and "CPUSchedulingPolicy" not in unit and "RT_GROUP_SCHED" in unit


def test_service_is_not_enabled_unless_asked(staged):
    root = staged(ORIN_NANO_SUPER_JP62)
    plain = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(root))
    assert not any("enable tinyvla-edge.service" in c for c in commands(plain, "service"))
    asked = install_device("orin-nano-8gb", dry_run=True, enable_service=True, **install_kwargs(root))
    assert "systemctl enable tinyvla-edge.service" in commands(asked, "service")


def test_wheels_come_only_from_the_configured_index(staged):
    for spec, path in ((ORIN_NANO_SUPER_JP62, "jp6/cu126"), (AGX_THOR_JP70, "sbsa/cu130")):
        result = install_device(spec.profile, dry_run=True, **install_kwargs(staged(spec)))
        pips = [c for s in result["steps"] for c in (x["command"] for x in s["commands"]) if "pip install" in c]
        assert pips and all(f"--index-url https://wheels.example.invalid/{path}/+simple" in c for c in pips)
        assert not any("--extra-index-url" in c for c in pips)
        verify = [c["command"] for c in step(result, "wheels")["verify"]]
        assert "a.cuda() @ a.cuda()" in verify[0] and "Linear8bitLt" in verify[1]  # real kernels, not imports


def test_wheel_index_defaults_to_the_community_index_and_each_override_wins_in_turn(staged, tmp_path):
    root = staged(ORIN_NANO_SUPER_JP62)
    default = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(root, index_url=None))
    assert default["settings"]["index_url"] == "https://pypi.jetson-ai-lab.io/jp6/cu126"
    assert "Jetson AI Lab" in default["settings"]["index_from"]
    assert "wheel index: https://pypi.jetson-ai-lab.io/jp6/cu126 (default" in render_install(default)
    profile = tmp_path / "nano-index.yaml"
    profile.write_text("target: p3767-0005\npower: {mode: 25W}\n"
                       "install: {index_url: 'https://profile.example.invalid/{platform}/{cuda_tag}'}\n")
    env = {"TINYVLA_EDGE_REALSENSE_SOURCE": REALSENSE_SOURCE}
    by_profile = install_device(str(profile), dry_run=True, **install_kwargs(root, index_url=None, env=env))
    assert by_profile["settings"]["index_url"] == "https://profile.example.invalid/jp6/cu126"
    env["TINYVLA_EDGE_INDEX_URL"] = "https://env.example.invalid/{platform}/{cuda_tag}"
    by_env = install_device(str(profile), dry_run=True, **install_kwargs(root, index_url=None, env=env))
    assert by_env["settings"]["index_url"] == "https://env.example.invalid/jp6/cu126"
    by_flag = install_device(str(profile), dry_run=True, **install_kwargs(root, env=env))
    assert by_flag["settings"]["index_url"] == INDEX_URL.format(platform="jp6", cuda_tag="cu126")
    assert by_flag["settings"]["index_from"] == "--index-url"


def test_jp6_gets_cusparselt_and_numpy_1_jp7_does_not(staged):
    nano = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(staged(ORIN_NANO_SUPER_JP62)))
    assert any("nvidia-cusparselt-cu12" in c for c in commands(nano, "cusparselt"))
    assert "'numpy<2'" in commands(nano, "wheels")[0]
    thor = install_device("thor", dry_run=True, **install_kwargs(staged(AGX_THOR_JP70)))
    assert step(thor, "cusparselt")["status"] == "skipped" and "numpy<2" not in commands(thor, "wheels")[0]


def test_realsense_backend_by_python_version(staged):
    thor = install_device("thor", dry_run=True, **install_kwargs(staged(AGX_THOR_JP70)))
    assert any(c.endswith("dreamscale-pyrealsense2") for c in commands(thor, "realsense"))
    nano = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(staged(ORIN_NANO_SUPER_JP62)))
    cmake = next(c for c in commands(nano, "realsense") if c.startswith("cmake"))
    assert "-DFORCE_RSUSB_BACKEND=ON" in cmake
    assert any(c.endswith("-j2") for c in commands(nano, "realsense"))  # 8 GB module: two jobs
    rules = file_content(nano, "realsense", "/etc/udev/rules.d/99-realsense-libusb.rules")
    assert rules.startswith("##Version=1.1##") and 'ATTRS{idProduct}=="0b07"' in rules  # D435


def test_source_build_defaults_to_the_pinned_upstream_tag_and_says_how_long(staged):
    nano = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(staged(ORIN_NANO_SUPER_JP62), env={}))
    assert ("git clone --depth 1 --branch v2.58.4 https://github.com/realsenseai/librealsense.git "
            "/opt/tinyvla-edge/src/librealsense") in commands(nano, "realsense")
    notes = " ".join(step(nano, "realsense")["notes"])
    # 110 CPU-minutes at 1.5 GHz over 2 jobs at the tree's 1.728 GHz: 47.7 -> "about 50 minutes".
    assert "about 50 minutes here (an estimate" in notes and "install.realsense: none" in notes


def test_swap_only_where_ram_is_small(staged):
    nano = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(staged(ORIN_NANO_SUPER_JP62)))
    assert "fallocate -l 5G /swapfile" in commands(nano, "swap")
    assert "/swapfile none swap sw 0 0" in file_content(nano, "swap", "/etc/fstab")
    agx = install_device("agx-orin-64gb", dry_run=True, **install_kwargs(staged(AGX_ORIN_64GB_JP621)))
    assert step(agx, "swap")["status"] == "ok"


def test_serial_rule_with_the_arms_identity(staged, tmp_path):
    root = staged(ORIN_NANO_SUPER_JP62)
    profile = tmp_path / "nano-u2d2.yaml"
    profile.write_text("target: p3767-0005\npower: {mode: 25W}\narm: {usb_vendor: '0403', usb_product: '6014'}\n")
    result = install_device(str(profile), dry_run=True, arm_serial="FT4TFGBQ", **install_kwargs(root))
    rules = file_content(result, "serial-udev", "/etc/udev/rules.d/70-tinyvla-edge-serial.rules")
    assert ('SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6014", ATTRS{serial}=="FT4TFGBQ", '
            'SYMLINK+="tinyvla-arm"') in rules
    assert 'ENV{ID_MM_DEVICE_IGNORE}="1"' in rules
    assert 'DRIVER=="ftdi_sio", ATTR{latency_timer}="1"' in rules


def test_brltty_and_modemmanager_need_consent(staged):
    root = staged(ORIN_NANO_SUPER_JP62)
    without = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(root))
    conflicts = step(without, "serial-conflicts")
    assert conflicts["status"] == "needs-consent" and not conflicts["commands"]
    assert any("brltty" in n and "--yes" in n for n in conflicts["notes"])
    with_yes = install_device("orin-nano-8gb", dry_run=True, yes=True, **install_kwargs(root))
    assert commands(with_yes, "serial-conflicts") == [
        "env DEBIAN_FRONTEND=noninteractive apt-get remove -y brltty", "systemctl disable --now ModemManager.service"]


def test_clock_service_stores_to_an_explicit_file_after_nvpmodel(staged):
    result = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(staged(ORIN_NANO_SUPER_JP62)))
    unit = file_content(result, "clocks", "/etc/systemd/system/tinyvla-edge-clocks.service")
    assert unit.index("rm -f /var/lib/tinyvla-edge/jetson_clocks.store") < unit.index("--store /var/lib/tinyvla-edge")
    assert "After=nvpmodel.service" in unit and "--restore /var/lib/tinyvla-edge/jetson_clocks.store" in unit


def test_reboot_is_announced_in_the_plan(staged):
    result = install_device("agx-orin-64gb", dry_run=True, **install_kwargs(staged(AGX_ORIN_64GB_JP621)))
    assert any("ask for a reboot" in n for n in step(result, "power-mode")["notes"])


def test_staged_commands_and_record(staged):
    root = staged(AGX_THOR_JP70)
    install_device("thor", **install_kwargs(root))
    script = root / "var/lib/tinyvla-edge/staged-commands.sh"
    text = script.read_text()
    assert text.startswith("#!/bin/sh") and "exec </dev/null" in text and "\nnvpmodel -m 0\n" in text
    assert script.stat().st_mode & stat.S_IXUSR
    record = read_record(root)
    assert record["profile"] == "thor" and record["device"]["module"] == "p3834-0008" and record["staged"]
    assert record["steps"]["power-mode"]["outcome"] == "pending-on-target"
    assert not list(root.rglob(".*.tmp"))  # atomic writes leave no temporaries behind


def test_jetpack5_is_refused_even_when_staging(staged):
    with pytest.raises(UnsupportedDevice, match=r"JetPack 5\.1\.2 .*not supported.*reflash"):
        install_device("agx-orin-64gb", **install_kwargs(staged(AGX_ORIN_JP512)))


def test_non_jetson_is_refused_unless_staging(staged):
    with pytest.raises(UnsupportedDevice, match="install provisions a Jetson.*--root DIR"):
        install_device("cpu-dev", user="robot")  # this machine, root /
    root = staged(X86_DEV_BOX)
    result = install_device("cpu-dev", **install_kwargs(root))
    ran = {s["name"] for s in result["steps"] if s["status"] != "skipped"}
    assert ran == {"groups", "serial-udev", "serial-conflicts", "service"}


def test_profile_for_another_module_is_refused(staged):
    with pytest.raises(InstallError, match="targets p3701-0005,p3701-0000, but this is Jetson Orin Nano"):
        install_device("agx-orin-64gb", dry_run=True, **install_kwargs(staged(ORIN_NANO_SUPER_JP62)))


def test_profile_is_picked_by_module_when_not_given(staged):
    result = install_device(None, dry_run=True, **install_kwargs(staged(ORIN_NX_16GB_JP61)))
    assert result["profile"] == "orin-nx-16gb"


def test_mode_name_missing_from_this_conf_lists_the_modes(staged, tmp_path):
    profile = tmp_path / "nano-maxn.yaml"
    profile.write_text("target: p3767-0005\npower: {mode: MAXN}\n")
    with pytest.raises(PowerModeError, match="this device has: 15W, 25W, MAXN_SUPER, 7W"):
        install_device(str(profile), dry_run=True, **install_kwargs(staged(ORIN_NANO_SUPER_JP62)))


def test_unknown_or_root_user_is_refused(staged):
    root = staged(ORIN_NANO_SUPER_JP62)
    with pytest.raises(InstallError, match="user 'nobody-here' does not exist"):
        install_device("orin-nano-8gb", dry_run=True, **install_kwargs(root, user="nobody-here"))
    with pytest.raises(InstallError, match="must not run as root"):
        install_device("orin-nano-8gb", dry_run=True, **install_kwargs(root, user="root"))


def test_json_plan_is_serialisable_with_exact_contents(staged):
    result = install_device("orin-nano-8gb", dry_run=True, **install_kwargs(staged(ORIN_NANO_SUPER_JP62)))
    data = json.loads(json.dumps(result))
    service = next(f for f in step(data, "service")["files"] if f["path"].endswith("tinyvla-edge.service"))
    assert service["action"] == "create" and service["content"].startswith("# Written by `tinyvla-edge install`")
    assert result["settings"]["index_url"] == INDEX_URL.format(platform="jp6", cuda_tag="cu126")
