"""The report's contention and power-budget warnings, from the rules to report.md."""

from __future__ import annotations

import random

from edge.profiling import Stage, WarningKind
from edge.profiling.checks import check_contention, check_power_budget
from edge.profiling.report import build_report, render_markdown
from tests.profiling.runs import make_run


def kinds(run) -> list[WarningKind]:
    return [w.kind for w in build_report([run]).runs[0].warnings]


def test_load_at_or_above_the_cpu_count_is_contention():
    warning = check_contention((4.6, 3.0, 2.0), 2, [10.0] * 20)
    assert warning.kind is WarningKind.CPU_CONTENTION
    assert "load average 4.6 on 2 CPUs before the run" in warning.message
    assert check_contention((1.9, 3.0, 2.0), 2, [10.0] * 20) is None
    assert check_contention(None, None, [10.0] * 20) is None


def test_unsteady_ticks_are_contention():
    spiky = [10.0] * 80 + [65.0] * 20  # p50 10 ms, p90 65 ms: the 6.5x
    warning = check_contention(None, None, spiky)
    assert warning is not None and "tick p90 is 6.5x p50" in warning.message
    steady = [random.Random(0).uniform(9.5, 10.5) for _ in range(100)]
    assert check_contention((0.5, 0.5, 0.5), 2, steady) is None


def test_a_loaded_run_is_reported_as_contended():
    loaded = make_run(load_average=(4.6, 3.1, 2.0), cpu_count=2)
    markdown = render_markdown(build_report([loaded]), [])
    assert "**WARNING (cpu-dev)**: CPU contention: load average 4.6 on 2 CPUs" in markdown
    assert "None:" not in markdown.split("## Warnings")[1].split("##")[0]
    assert kinds(make_run(load_average=(0.3, 0.3, 0.3), cpu_count=2)) == []


def test_a_run_with_spiky_ticks_is_reported_as_contended():
    run = make_run(ticks=100)
    spiky = {stage: [v * (8 if i % 5 == 0 and stage is Stage.VISION else 1) for i, v in enumerate(samples)]
             for stage, samples in run.stages_ms.items()}
    assert kinds(run) == []
    assert kinds(run.model_copy(update={"stages_ms": spiky})) == [WarningKind.CPU_CONTENTION]


def test_power_over_the_profile_budget_warns():
    assert check_power_budget(9.0, 7.0).kind is WarningKind.POWER_OVER_BUDGET
    assert check_power_budget(6.9, 7.0) is None
    assert check_power_budget(None, 7.0) is None and check_power_budget(9.0, None) is None
    over = make_run("orin-nano-8gb", watts=9.0, power_budget_w=7.0)
    markdown = render_markdown(build_report([over]), [])
    assert "mean power 9.0 W exceeds the profile's budget of 7.0 W" in " ".join(markdown.splitlines())
    assert "power budget (profile): 7.0 W" in markdown
    assert kinds(make_run(watts=6.0, power_budget_w=7.0)) == []
    assert kinds(make_run(watts=None, power_budget_w=7.0)) == []  # no power data: nothing to compare
