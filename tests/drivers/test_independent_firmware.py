"""The toolkit against a firmware it did not write (independent_firmware.py, from the spec
alone): the conformance check, the sequence wrap, and the doctor's diagnosis of each way a
vendor's firmware goes wrong."""

from __future__ import annotations

import json

import pytest

from drivers.arm.conformance import ARM_CHECKS, WIRE_CHECKS, run_arm_conformance
from drivers.probe import probe_arm
from drivers.arm.serial_arm import SerialArm
from drivers.sim.sim_arm import SimArm
from edge.cli import main
from edge.doctor import arm_checks

from .independent_firmware import BAD_VERSION, IndependentFirmware, Knobs
from .test_serial_wrap import drive_through_the_wrap

REPLY_TIME_CHECK = "reply time within the spec"  # load-sensitive here: see test_arm_conformance.py


def _doctor(knobs: Knobs, rate_hz: float = 30.0) -> dict[str, object]:
    with IndependentFirmware(knobs) as firmware:
        checks = arm_checks(probe_arm(firmware.port, 1_000_000, timeout_s=0.5), rate_hz)
    return {check.name: check for check in checks}


def test_the_independent_firmware_passes_the_conformance_check():
    with IndependentFirmware(Knobs(dof=3)) as firmware:
        results = run_arm_conformance(lambda: SerialArm(firmware.port, timeout_s=0.5), port=firmware.port)
    table = {r.name: r.status for r in results if r.name != REPLY_TIME_CHECK}
    expected = {name: "pass" for name in ARM_CHECKS + WIRE_CHECKS if name != REPLY_TIME_CHECK}
    assert table == {**expected, "FAULT refuses targets": "skip"}, results


def test_its_fault_is_seen_by_the_conformance_check():
    with IndependentFirmware(Knobs(fault=True)) as firmware:
        results = {r.name: r for r in run_arm_conformance(lambda: SerialArm(firmware.port, timeout_s=0.5),
                                                          port=firmware.port)}
    assert results["FAULT refuses targets"].status == "pass"
    assert results["targets applied"].status == "fail"  # and the Arm-level checks say why motion fails


def test_the_wrap_case_against_the_independent_firmware():
    with IndependentFirmware(Knobs(dof=2, watchdog_ms=5000)) as firmware:
        with SerialArm(firmware.port, timeout_s=0.5) as arm:
            seq_a, seq_b = drive_through_the_wrap(arm)
            assert seq_b != seq_a and firmware.applied == 2 and firmware.last_seq == seq_b


def test_the_doctor_shows_what_a_healthy_arm_declared():
    checks = _doctor(Knobs(dof=3, watchdog_ms=500))
    assert checks["arm"].status == "pass"
    assert "3 DOF + gripper, joint space, firmware 2.7.1, protocol v1, watchdog 500 ms" in checks["arm"].detail
    assert "[-1.5, 1.5] step 0.4" in checks["arm"].detail
    assert checks["arm-state"].status == "pass" and "watchdog hold" in checks["arm-state"].detail
    assert checks["arm-rate"].status == "pass" and "2 attempt(s)" in checks["arm-rate"].detail
    assert "p50" in checks["arm-reply-time"].detail and "spec 5 ms" in checks["arm-reply-time"].detail
    assert checks["arm-watchdog"].status == "pass"


@pytest.mark.parametrize("knobs, diagnosis, named", [
    (Knobs(info_dof_byte=16), "refused", "INFO declares dof=16"),
    (Knobs(action_space=2), "refused", "INFO declares action_space=2"),
    (Knobs(protocol_version=2), "incompatible", "speaks serial protocol v2"),
    (Knobs(hello_nak=BAD_VERSION), "refused", "NAK BAD_VERSION"),
])
def test_the_doctor_names_a_valid_frame_it_refuses_instead_of_blaming_the_baud_rate(knobs, diagnosis, named):
    check = _doctor(knobs)["arm"]
    assert check.status == "fail" and check.detail.startswith(f"[{diagnosis}]") and named in check.detail, check
    assert "probably does not match" not in check.detail


def test_the_doctor_blames_the_baud_rate_for_garbage():
    with SimArm(dof=2, space="joint", baud=115200) as sim:
        check = arm_checks(probe_arm(sim.port, 1_000_000, timeout_s=0.5), 30.0)[0]
    assert check.status == "fail" and check.detail.startswith("[garbage]") and "baud" in check.fix


@pytest.mark.parametrize("knobs, name, named", [
    (Knobs(estop_at_power_up=True), "arm-state", "ESTOP latched"),
    (Knobs(fault=True), "arm-state", "FAULT latched"),
    (Knobs(reply_delay_s=0.05), "arm-reply-time", "most calls would time out"),
    (Knobs(watchdog_ms=10), "arm-watchdog", "watchdog is 10 ms"),
])
def test_the_doctor_fails_an_arm_that_run_would_stop(knobs, name, named):
    check = _doctor(knobs)[name]
    assert check.status == "fail" and named in check.detail, check


def test_doctor_arm_conformance_through_the_cli_as_json(capsys):
    with IndependentFirmware(Knobs(dof=2)) as firmware:
        main(["doctor", "--arm", firmware.port, "--conformance", "--json"])
    report = json.loads(capsys.readouterr().out)
    rows = {c["name"]: c["status"] for c in report["checks"] if c["name"].startswith("conformance: ")}
    assert len(rows) == len(ARM_CHECKS) + len(WIRE_CHECKS)
    assert rows["conformance: retransmission acked, not re-applied"] == "pass"
    assert rows["conformance: HELLO resets last_seq"] == "pass"
    assert {c["name"] for c in report["checks"]} >= {"arm", "arm-state", "arm-rate", "arm-reply-time", "arm-watchdog"}
