"""Across every run in this directory's tests: the emulator never accepted a target outside the
limits (arm INFO ∩ profile) or a step larger than the max change. Runs last (file order)."""

from __future__ import annotations

from tests.runtime.conftest import ARM_LOGS
from edge.runtime.audit import audit_arm_log


def test_no_run_ever_had_an_unsafe_target_accepted(rig_factory):
    if not ARM_LOGS:  # run on its own: make one run under corrupted bytes so the audit is not vacuous
        rig_factory(faults=["corrupt:0.005"]).run(duration_s=1.0)
    total = 0
    for path, limits in ARM_LOGS:
        if not path.exists():
            continue
        result = audit_arm_log(path, limits)
        assert result.ok, f"{path}: {result.as_dict()}"
        total += result.accepted
    assert total > 0
