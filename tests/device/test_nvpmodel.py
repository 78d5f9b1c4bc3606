"""nvpmodel conf parsing, queries, switching by name (with the reboot prompt), and jetson_clocks,
against emulators of the real tools acting on staged roots."""

from __future__ import annotations

import pytest

from edge.device.nvpmodel import (
    PowerModeError,
    clocks_locked,
    current_mode,
    lock_clocks,
    parse_conf,
    parse_query,
    read_conf,
    read_status,
    restore_clocks,
    run_command,
    set_mode,
    switched_power,
)
from tests.device.jetson_tree import AGX_ORIN_64GB_JP621, FIXTURES, ORIN_NANO_SUPER_JP62, ORIN_NX_16GB_JP61


@pytest.mark.parametrize("conf, modes, default, cores", [
    ("nvpmodel_p3767_0003_super.conf", {"15W": 0, "25W": 1, "MAXN_SUPER": 2, "7W": 3}, 1,
     {"15W": 6, "25W": 6, "MAXN_SUPER": 6, "7W": 4}),
    ("nvpmodel_p3767_0000.conf", {"MAXN": 0, "10W": 1, "15W": 2, "25W": 3}, 2,
     {"MAXN": 8, "10W": 4, "15W": 4, "25W": 8}),
    ("nvpmodel_p3701_0000.conf", {"MAXN": 0, "MODE_15W": 1, "MODE_30W": 2, "MODE_50W": 3}, 2,
     {"MAXN": 12, "MODE_15W": 4, "MODE_30W": 8, "MODE_50W": 12}),
    ("nvpmodel_thor.conf", {"MAXN": 0, "120W": 1, "90W": 2, "70W": 3}, 0, None),
])
def test_conf_ids_names_default_and_online_cores(conf, modes, default, cores):
    parsed = parse_conf((FIXTURES / "nvpmodel" / conf).read_text(), conf)
    assert {m.name: m.id for m in parsed.modes} == modes
    assert parsed.default_id == default
    if cores:
        assert {m.name: len(m.online_cpus) for m in parsed.modes} == cores


def test_the_references_power_model_lines_parse_and_mode_0_is_not_maxn_on_nano_super():
    conf = parse_conf((FIXTURES / "nvpmodel/power-models-orin-nano-super.txt").read_text())
    assert [(m.id, m.name) for m in conf.modes] == [(0, "15W"), (1, "25W"), (2, "MAXN_SUPER"), (3, "7W")]
    assert conf.by_id(0).name == "15W" and conf.by_name("MAXN_SUPER").id == 2


def test_param_definitions_are_not_mistaken_for_modes():
    # The PARAM section has `MAX_FREQ /sys/...` lines and NVIDIA's `<PARAM` without a space.
    conf = parse_conf((FIXTURES / "nvpmodel/nvpmodel_p3767_0003_super.conf").read_text())
    assert len(conf.modes) == 4 and conf.by_name("25W").setting("GPU", "MAX_FREQ") == "918000000"


def test_unknown_mode_name_lists_what_the_device_has():
    conf = parse_conf((FIXTURES / "nvpmodel/nvpmodel_p3767_0003_super.conf").read_text(), "nvpmodel_p3767_0003_super.conf")
    with pytest.raises(PowerModeError, match="'MAXN' is not defined in nvpmodel_p3767_0003_super.conf; this device has: 15W, 25W, MAXN_SUPER, 7W"):
        conf.by_name("MAXN")


@pytest.mark.parametrize("capture, expected", [
    ("query-orin-nano-super.txt", ("MAXN_SUPER", 2)),
    ("query-jp5-nano-warning.txt", ("MAXN", 0)),
    ("query-verbose.txt", ("MAXN_SUPER", 2)),
])
def test_nvpmodel_q_captures(capture, expected):
    assert parse_query((FIXTURES / "nvpmodel" / capture).read_text()) == expected


def test_reboot_is_expected_when_gpu_power_gating_changes():
    agx = parse_conf((FIXTURES / "nvpmodel/nvpmodel_p3701_0000.conf").read_text())
    assert agx.reboot_expected(2, 0)  # MODE_30W (TPC mask 240) -> MAXN (0)
    assert not agx.reboot_expected(0, 3)  # MAXN -> MODE_50W, same mask
    nano = parse_conf((FIXTURES / "nvpmodel/nvpmodel_p3767_0003_super.conf").read_text())
    assert not nano.reboot_expected(2, 1)


def test_current_mode_from_status_file_and_from_the_emulated_tool(staged, emulators):
    root = staged(ORIN_NANO_SUPER_JP62)
    assert read_status(root) == 2
    assert current_mode(root).source == "status file"
    emulators(root, JETSON_EMU_FAN_WARN="1")
    now = current_mode(root, run_command)
    assert (now.id, now.name, now.source) == (2, "MAXN_SUPER", "nvpmodel -q")
    (root / "var/lib/nvpmodel/status").unlink()
    assert current_mode(root).source == "conf default" and current_mode(root).name == "25W"


def test_set_mode_by_name_switches_and_offlines_cores(staged, emulators):
    root = staged(ORIN_NX_16GB_JP61)  # 15W (cores 0-3), TPC mask 252
    emulators(root)
    result = set_mode("10W", root=root)  # same mask: no reboot
    assert result.changed and not result.reboot_required and result.mode.id == 1
    assert read_status(root) == 1 and (root / "sys/devices/system/cpu/online").read_text().strip() == "0-3"
    again = set_mode("10W", root=root)
    assert not again.changed and "already" in again.message


def test_reboot_prompt_is_declined_and_reported_not_blocked_on(staged, emulators):
    root = staged(AGX_ORIN_64GB_JP621)  # MODE_30W -> MAXN changes the TPC mask
    emulators(root)
    result = set_mode("MAXN", root=root)
    assert result.reboot_required and not result.changed
    assert "sudo nvpmodel -m 0" in result.message and "YES" in result.message
    assert read_status(root) is None  # nothing changed: DEFAULT (MODE_30W) still applies
    prompt = run_command(["nvpmodel", "-m", "0"])
    assert prompt.stdout.splitlines()[:3] == (FIXTURES / "nvpmodel/reboot-prompt.txt").read_text().splitlines()
    assert "NVPM ERROR: bad input!" in prompt.stdout  # stdin closed -> EOF


def test_reboot_prompt_answered_yes_when_asked(staged, emulators):
    root = staged(AGX_ORIN_64GB_JP621)
    emulators(root)
    result = set_mode("MAXN", root=root, confirm_reboot=True)
    assert result.reboot_required and result.changed and read_status(root) == 0


def test_nvpm_error_is_a_clear_failure(staged, emulators):
    root = staged(ORIN_NX_16GB_JP61)
    emulators(root, JETSON_EMU_NVPM_ERROR="Failed to set power mode")
    with pytest.raises(PowerModeError, match="nvpmodel -m 0 \\(MAXN\\) failed: NVPM ERROR: Failed to set power mode"):
        set_mode("MAXN", root=root)


def test_read_conf_resolves_the_nvpower_symlink_inside_the_tree(staged):
    conf = read_conf(staged(ORIN_NANO_SUPER_JP62))
    assert conf.path == "/etc/nvpmodel/nvpmodel_p3767_0003_super.conf"


def test_lock_and_restore_clocks_with_an_explicit_store(staged, emulators, tmp_path):
    root = staged(ORIN_NANO_SUPER_JP62)
    emulators(root)
    store = tmp_path / "clocks.store"
    store.write_text("stale\n")  # would make jetson_clocks prompt "overwrite? Y/N": lock_clocks deletes it
    assert clocks_locked(root).locked is False
    lock_clocks(store)
    assert clocks_locked(root).locked is True
    assert "/sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq:729600" in store.read_text()
    restore_clocks(store)
    assert clocks_locked(root).locked is False


def test_restore_without_a_store_fails_clearly(tmp_path):
    with pytest.raises(PowerModeError, match="does not exist"):
        restore_clocks(tmp_path / "missing.store")


def test_switched_power_restores_mode_and_clocks_even_on_error(staged, emulators, tmp_path):
    root = staged(ORIN_NX_16GB_JP61)
    emulators(root)
    with pytest.raises(RuntimeError):
        with switched_power("10W", lock=True, store_path=tmp_path / "s", root=root) as result:
            assert result.mode.name == "10W" and clocks_locked(root).locked
            raise RuntimeError("interrupted measurement")
    assert read_status(root) == 2 and clocks_locked(root).locked is False  # back to 15W, clocks restored


def test_switched_power_refuses_a_switch_that_needs_a_reboot(staged, emulators, tmp_path):
    root = staged(AGX_ORIN_64GB_JP621)
    emulators(root)
    with pytest.raises(PowerModeError, match="needs a reboot"):
        with switched_power("MAXN", lock=False, store_path=tmp_path / "s", root=root):
            pass
