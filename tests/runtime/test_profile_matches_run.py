"""`profile` measures what `run` deploys: the same start-up and control loop, so the same stages
and comparable model figures, and the control rate the ticks achieved at the profile's rate."""

from __future__ import annotations

import json

from edge.cli import main

PROFILE = """
name: test-slow
target: any
control: {rate_hz: 10, max_rate_hz: 60, action_deadline_s: 2.0}
arm: {on_shutdown: estop}
"""
TICKS = 30


def test_profile_and_run_drive_the_same_loop(tiny_output, recording, tmp_path, capsys):
    profile = tmp_path / "test-slow.yaml"
    profile.write_text(PROFILE)
    cameras = ["--camera", f"cam0=recording:{recording}?loop", "--camera", f"cam1=recording:{recording}?loop"]
    common = [str(tiny_output), *cameras, "--profile", str(profile), "--ticks", str(TICKS), "--json"]

    assert main(["run", *common, "--arm", "sim", "--instruction", "pick up the object"]) == 0
    ran = json.loads(capsys.readouterr().out)
    out = tmp_path / "report"
    assert main(["profile", *common, "--warmup", "2", "--output", str(out)]) == 0
    _, err = capsys.readouterr()
    measured = json.loads((out / "profile.json").read_text())["runs"][0]

    # Both started up the same way (model process, serial budget, execution latency) ...
    assert "inference: own process" in err and "execution latency" in err and ran["plan"]["inference"]["where"] == "process"
    # ... and ran the loop at the profile's rate for the asked ticks.
    assert measured["mode"] == "deployed" and ran["ticks"] == measured["ticks"] == TICKS
    control = measured["control"]
    assert control["target_rate_hz"] == ran["target_rate_hz"] == 10
    assert measured["throughput"]["control_hz"] == control["achieved_rate_hz"] > 0
    assert set(control["tick_ms"]) == set(ran["tick_ms"])
    assert control["exec_latency_ms"] > 0 and ran["exec_latency_ms"] > 0  # measured from the round trip
    # The same stages: the model process's per inference, the tick's safety and serial per tick.
    inference_stages = set(ran["inference_ms"]) - {"latency", "backbone"}
    assert set(measured["stages_ms"]) == inference_stages | {"safety", "serial"}
    inferences = len(measured["inference_boundaries"])
    assert inferences >= 1 and all(len(measured["stages_ms"][s]) == inferences for s in inference_stages)
    assert all(len(measured["stages_ms"][s]) == TICKS for s in ("safety", "serial"))
    # Comparable head latency (a loose bound: other jobs share this machine's CPUs).
    run_head = ran["inference_ms"]["head"]["p50"]
    profile_head = sorted(measured["stages_ms"]["head"])[inferences // 2]
    assert 0.2 < profile_head / run_head < 5, (profile_head, run_head)
