"""`doctor` on this machine (whatever it is, reported honestly) and on staged Jetson roots."""

from __future__ import annotations

import json
import sys

import pytest

from edge.cli import main
from edge.config import load_profile
from edge.device.detect import detect
from edge.device.nvpmodel import lock_clocks, run_command, set_mode
from edge.doctor import CHECKS, Check, DoctorContext, _run_probes, check_arm, check_camera
from edge.install import install_device
from tests.device.conftest import install_kwargs
from tests.device.jetson_tree import AGX_ORIN_JP512, ORIN_NANO_SUPER_JP62


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


@pytest.fixture(scope="module")
def this_machine(tmp_path_factory):
    """`tinyvla-edge doctor --json` here, through the CLI entry point (run once: probes take seconds)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["doctor", "--json"])
    return code, json.loads(out.getvalue())


def test_doctor_json_on_this_machine_is_honest(this_machine):
    code, report = this_machine
    checks = by_name(report)
    assert set(report["counts"]) == {"pass", "warn", "fail", "skip", "unavailable"}
    assert all(c["status"] in report["counts"] for c in report["checks"])
    assert code == (0 if report["ok"] else 1)
    assert checks["torch"]["status"] == "pass"  # the test environment has torch
    if not report["jetson"]:
        assert checks["device"]["status"] == "skip" and "not a Jetson" in checks["device"]["detail"]
        assert "power-mode" not in checks  # Jetson-only checks are not faked
    assert checks["disk"]["status"] in ("pass", "warn", "fail")
    assert all(c["fix"] for c in report["checks"] if c["status"] == "fail")  # every failure says what to do


@pytest.fixture(scope="module")
def probes():
    """The probe programs run once against this interpreter (they take seconds: torch imports)."""
    return _run_probes(sys.executable)


def jetson_checks(root, probes, profile="orin-nano-8gb", arm=None) -> dict[str, Check]:
    """Every doctor check on a staged Jetson root, with this machine's probe results."""
    ctx = DoctorContext(device=detect(root, {}), profile=load_profile(profile), profile_note="from --profile",
                        root=str(root), python=sys.executable, probes=probes, camera=None, arm=arm,
                        query_runner=run_command)
    return {c.name: c for fn in CHECKS for c in fn(ctx)}


def test_doctor_on_a_staged_jetson_reads_mode_and_clocks(staged, emulators, probes, tmp_path):
    root = staged(ORIN_NANO_SUPER_JP62)
    emulators(root)
    install_device("orin-nano-8gb", **install_kwargs(root))
    before = jetson_checks(root, probes, arm=str(tmp_path / "ttyUSB9"))
    assert before["device"].status == "pass" and "JetPack 6.2" in before["device"].detail
    assert before["jetpack-libraries"].status == "pass"
    assert before["power-mode"].status == "fail" and before["power-mode"].fix.startswith("sudo nvpmodel -m 1")
    assert before["clocks"].status == "fail"
    assert before["install"].status == "warn"  # staged: commands still pending on the target
    assert before["service"].status == "pass"
    assert before["arm"].status == "fail" and "does not exist" in before["arm"].detail
    assert before["brltty"].status == "warn" and before["swap"].status == "pass"
    if not probes["torch"].data.get("cuda"):  # no Jetson GPU here: said, not hidden
        assert before["cuda-kernel"].status == "fail" and before["python"].status == "fail"

    set_mode("25W", root=root)
    lock_clocks(tmp_path / "clocks.store")
    after = jetson_checks(root, probes)
    assert after["power-mode"].status == "pass" and "nvpmodel -q" in after["power-mode"].detail
    assert after["clocks"].status == "pass"


def test_doctor_refuses_jetpack5_and_flags_a_wrong_profile(staged, probes):
    checks = jetson_checks(staged(AGX_ORIN_JP512), probes, profile="agx-orin-64gb")
    assert checks["device"].status == "fail" and "reflash" in checks["device"].fix
    nano = jetson_checks(staged(ORIN_NANO_SUPER_JP62), probes, profile="thor")
    assert nano["profile"].status == "fail"


def _probe_expected() -> str:
    """With drivers.probe importable the probes really run and must pass; without it: unavailable."""
    try:
        import drivers.probe  # noqa: F401
    except ImportError:
        return "unavailable"
    return "pass"


def _context(camera=None, arm=None) -> DoctorContext:
    return DoctorContext(device=detect("/", {}), profile=None, profile_note="", root="/", python="python3",
                         probes={}, camera=camera, arm=arm, query_runner=None)


def test_arm_handshake_through_the_serial_probe():
    try:
        from drivers.sim.sim_arm import SimArm
    except ImportError:
        pytest.skip("drivers.sim.sim_arm not available")
    with SimArm() as sim:
        check = check_arm(_context(arm=sim.port))[0]
    assert check.status == _probe_expected(), check
    if check.status == "pass":
        assert "DOF + gripper" in check.detail


def test_camera_stream_through_the_camera_probe():
    check = check_camera(_context(camera="synthetic"))[0]
    assert check.status == _probe_expected(), check
    assert check_camera(_context())[0].status == "skip"
