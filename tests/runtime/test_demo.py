"""The demo's pass conditions and its artifact cache (the full demo is `make demo`)."""

from __future__ import annotations

from edge.demo import _cached, cache_dir, demo_checks
from edge.runtime.audit import AuditResult


def _report(rate_error=0.0, miss_ratio=0.0, arm_safe=True, reason="completed") -> dict:
    return {"rate_error": rate_error, "miss_ratio": miss_ratio, "shutdown": {"arm_safe": arm_safe},
            "stop": {"reason": reason}}


def test_the_demo_passes_only_when_every_check_holds():
    clean = AuditResult(accepted=10)
    assert all(demo_checks(_report(), clean).values())
    assert not demo_checks(_report(rate_error=-0.06), clean)["rate_within_5_percent"]
    assert not demo_checks(_report(miss_ratio=0.02), clean)["misses_at_most_1_percent"]
    assert not demo_checks(_report(arm_safe=False), clean)["arm_left_safe"]
    assert not demo_checks(_report(reason="camera_stall"), clean)["completed"]
    assert not demo_checks(_report(), AuditResult(accepted=10, out_of_limits=[{}]))["accepted_targets_within_limits"]
    assert not demo_checks(_report(), AuditResult(accepted=0))["accepted_targets_within_limits"]


def test_artifacts_are_built_once_and_a_half_built_one_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVLA_EDGE_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    builds = []

    def build(path):
        builds.append(path)
        path.mkdir(parents=True)
        (path / "artifact").write_text("x")

    target = cache_dir() / "thing"
    _cached(target, build, lambda line: None, "thing")
    _cached(target, build, lambda line: None, "thing")
    assert len(builds) == 1
    (target / ".complete").unlink()  # as if the first build had been interrupted
    _cached(target, build, lambda line: None, "thing")
    assert len(builds) == 2 and (target / "artifact").is_file()


def test_a_failed_demo_is_a_one_line_error_with_a_nonzero_exit():
    import pytest

    from edge.demo import DemoFailed, check_demo

    check_demo({"passed": True, "failed": []})
    with pytest.raises(DemoFailed, match="demo checks failed: rate_within_5_percent") as failure:
        check_demo({"passed": False, "failed": ["rate_within_5_percent"]})
    assert failure.value.exit_code != 0
