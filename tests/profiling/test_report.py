"""The written report: profile.json figures, report.md table and marking, PNG plots, comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from edge.errors import EdgeError
from edge.profiling import (
    SCHEMA_VERSION,
    ProfileRun,
    Stage,
    compare_reports,
    load_profile_report,
    summarize_stage,
    write_profile_report,
)
from edge.profiling.report import Better, best_indices, build_report, render_markdown
from tests.profiling.runs import make_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DOCS = Path(__file__).resolve().parents[2] / "docs/profile-report.md"


@pytest.fixture(scope="module")
def two_runs() -> list[ProfileRun]:
    fast = make_run("orin-nx-16gb", ticks=80, scale=1.0, watts=14.0, device="Jetson Orin NX", seed=1)
    frugal = make_run("orin-nano-8gb", ticks=50, scale=2.0, watts=6.0, device="Jetson Orin Nano", seed=2)
    return [fast, frugal]


@pytest.fixture(scope="module")
def written(two_runs, tmp_path_factory):
    return write_profile_report(two_runs, tmp_path_factory.mktemp("report") / "out")


def markdown_of(runs: list[ProfileRun]) -> str:
    """report.md of `runs` without drawing the plots (the plot tests draw them)."""
    return render_markdown(build_report(runs), ["latency_cdf.png", "tick_series.png", "power_trace.png"])


def table(markdown: str, section: str = "Summary") -> tuple[list[str], dict[str, list[str]]]:
    """Header and rows (by their first cell) of the first table in a report section."""
    body = markdown.split(f"## {section}\n")[1].split("\n## ")[0]
    block = next(chunk for chunk in body.split("\n\n") if chunk.startswith("|"))
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()]
    cells = [row for row in cells if not set("".join(row)) <= set("-:")]  # drop the rule line
    return cells[0][1:], {row[0]: row[1:] for row in cells[1:]}


def test_json_figures_match_the_ticks(written, two_runs):
    data = json.loads(written.json.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    for run, stored, summary in zip(two_runs, data["runs"], data["summaries"]):
        assert stored["ticks"] == run.ticks
        assert len(stored["inference_boundaries"]) == run.ticks
        for stage, samples in run.stages_ms.items():
            assert len(stored["stages_ms"][stage.value]) == run.ticks
            assert summary["stages"][stage.value]["n"] == run.ticks
            assert summary["stages"][stage.value] == summarize_stage(samples).model_dump()
        assert summary["tick_total"]["n"] == run.ticks
        assert summary["mean_power_w"] == pytest.approx(run.mean_power_w())
        assert stored["energy_per_inference_j"] == pytest.approx(run.energy_per_inference_j)


def test_json_round_trips_through_the_model(written, two_runs):
    report = load_profile_report(written.json)
    assert [r.profile for r in report.runs] == [r.profile for r in two_runs]
    assert report.runs[0].stages_ms == two_runs[0].stages_ms


@pytest.mark.parametrize("name", ["latency_cdf.png", "tick_series.png", "power_trace.png", "energy.png"])
def test_plots_are_valid_non_empty_pngs(written, name):
    path = written.directory / name
    assert path in written.plots
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 300 and image.height > 200
        image.verify()


def test_markdown_links_the_plots(written):
    markdown = written.markdown.read_text()
    for plot in written.plots:
        assert f"]({plot.name})" in markdown


def test_summary_has_profiles_as_columns_and_bolds_the_best(written):
    header, rows = table(written.markdown.read_text())
    assert header == ["orin-nx-16gb", "orin-nano-8gb"]
    # The NX is twice as fast; the Nano draws less power and, here, less energy per inference.
    assert rows["tick p50 (ms)"][0].startswith("**") and not rows["tick p50 (ms)"][1].startswith("**")
    assert rows["vision p50 (ms)"][0].startswith("**")
    assert rows["policy rate (inferences/s)"] == ["**20.0**", "10.0"]
    assert rows["mean power (W)"] == ["14.00", "**6.00**"]
    assert rows["J/inference"][1].startswith("**")
    # Equal values are both best; rows nobody has are not marked.
    assert rows["control rate (Hz)"] == ["**30.0**", "**30.0**"]
    assert rows["CUDA peak (MiB)"] == ["n/a", "n/a"]
    # Not a figure of merit: never marked.
    assert not rows["measured ticks"][0].startswith("**")
    # Stages nobody ran are not rows.
    assert "serial p50 (ms)" not in rows and "head p50 (ms)" in rows


def test_each_profile_has_a_headline_and_a_stage_table(written, two_runs):
    markdown = written.markdown.read_text()
    section = markdown.split("## orin-nano-8gb\n")[1].split("\n## ")[0]
    summary = load_profile_report(written.json).summaries[1]
    expected_p99 = f"tick p99 {summary.tick_total.p99:.2f} ms"
    assert f"**policy 10.0 inferences/s · control 30.0 Hz · {expected_p99}" in " ".join(section.split("\n"))
    header, rows = table(markdown, "orin-nano-8gb")
    assert header == ["p50", "p90", "p99", "max", "mean"]
    assert list(rows) == [stage.value for stage in two_runs[1].stages_ms] + ["tick total"]
    assert rows["tick total"][2] == f"{summary.tick_total.p99:.2f}"


def test_single_run_has_no_summary_and_marks_nothing():
    markdown = markdown_of([make_run()])
    assert "## Summary" not in markdown
    _, rows = table(markdown, "cpu-dev")
    assert not any("**" in cell for row in rows.values() for cell in row)


@pytest.mark.parametrize("count", [1, 3])
def test_every_report_line_fits_100_columns(tmp_path, count):
    long_device = "NVIDIA Jetson AGX Orin Developer Kit (p3701-0005) with a rather long model string"
    runs = [make_run("orin-nano-8gb", device=long_device, seed=i, watts=None if i == 1 else 7.0,
                     load_average=(9.5, 8.0, 7.0), cpu_count=2, power_budget_w=5.0) for i in range(count)]
    markdown = markdown_of(runs)
    assert "WARNING" in markdown  # the long warning lines are part of what must fit
    too_wide = [line for line in markdown.splitlines() if len(line) > 100]
    assert too_wide == []


def test_best_indices():
    assert best_indices([3.0, None, 1.0, 1.0], Better.LOWER) == {2, 3}
    assert best_indices([3.0, None, 1.0], Better.HIGHER) == {0}
    assert best_indices([3.0, None], Better.LOWER) == set()
    assert best_indices([3.0, 1.0], None) == set()


def test_unavailable_power_is_said_not_zeroed(tmp_path):
    report = build_report([make_run(watts=None), make_run("other", watts=5.0)])
    markdown = render_markdown(report, [])
    assert "power: unavailable (rapl: no RAPL zones under /sys/class/powercap)" in markdown
    _, rows = table(markdown)
    for name in ("mean power (W)", "J/inference", "J/action"):
        assert rows[name][0] == "unavailable"
    assert "J/action unavailable (no power data)" in " ".join(markdown.split("## cpu-dev")[1].split("\n")[:4])
    assert "leave out the runs without power data (cpu-dev: rapl: no RAPL zones" in " ".join(markdown.splitlines())
    stored = json.loads(report.model_dump_json())["runs"][0]
    assert stored["power"]["trace"] == [] and stored["energy_per_inference_j"] is None


def test_no_power_data_means_no_power_plots_and_says_why(tmp_path):
    (tmp_path / "power_trace.png").write_bytes(b"left by an earlier run")
    files = write_profile_report([make_run(watts=None), make_run("other", watts=None)], tmp_path)
    assert [p.name for p in files.plots] == ["latency_cdf.png", "tick_series.png"]
    assert not (tmp_path / "power_trace.png").exists() and not (tmp_path / "energy.png").exists()
    text = " ".join(files.markdown.read_text().splitlines())
    assert "No power or energy plots: no run has power data (cpu-dev: rapl: no RAPL zones" in text
    assert "power_trace.png" not in text


def test_warnings_are_loud_in_markdown_and_json():
    run = make_run("orin-nano-8gb", is_jetson=True, power_mode="15W", expected_power_mode="25W", clocks_locked=True)
    report = build_report([run])
    assert "> **WARNING (orin-nano-8gb)**: power mode is 15W, the profile wants 25W" in render_markdown(report, [])
    stored = json.loads(report.model_dump_json())["runs"][0]["warnings"]
    assert [w["kind"] for w in stored] == ["power_mode_mismatch"]


def test_compare_two_earlier_reports(tmp_path):
    jetson = make_run("cpu-dev", device="Jetson Orin Nano", is_jetson=True, clocks_locked=True, scale=3.0, watts=7.0)
    workstation = make_run("cpu-dev", device="x86_64 workstation", scale=1.0, watts=None)
    first = write_profile_report([jetson], tmp_path / "jetson")
    second = write_profile_report([workstation], tmp_path / "workstation")
    files = compare_reports([first.json, second.directory], tmp_path / "compare")
    report = load_profile_report(files.json)
    assert [s.label for s in report.summaries] == ["cpu-dev (Jetson Orin Nano)", "cpu-dev (x86_64 workstation)"]
    assert report.compared_from == [str(first.json), str(second.directory)]
    assert report.runs[0].stages_ms == load_profile_report(first.json).runs[0].stages_ms
    markdown = files.markdown.read_text()
    assert "Compared from:" in markdown
    header, rows = table(markdown)
    assert header == ["cpu-dev (Jetson Orin Nano)", "cpu-dev (x86_64 workstation)"]
    assert rows["tick p50 (ms)"][1].startswith("**")  # the workstation is faster
    assert rows["mean power (W)"][1] == "unavailable"
    assert all((files.directory / p.name).exists() for p in files.plots)


def test_same_profile_on_the_same_device_is_numbered():
    assert [s.label for s in build_report([make_run(seed=1), make_run(seed=2)]).summaries] == [
        "cpu-dev (x86_64 workstation) #1",
        "cpu-dev (x86_64 workstation) #2",
    ]


def test_compare_rejects_bad_inputs(tmp_path):
    with pytest.raises(EdgeError, match="no such profile report"):
        compare_reports([tmp_path / "missing.json"], tmp_path / "out")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(EdgeError, match="broken.json: not valid JSON"):
        compare_reports([broken], tmp_path / "out")
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"schema_version": 99, "runs": []}))
    with pytest.raises(EdgeError, match="schema_version 99 is not supported"):
        compare_reports([future], tmp_path / "out")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "runs": []}))
    with pytest.raises(EdgeError, match="invalid.json: field"):
        compare_reports([invalid], tmp_path / "out")
    with pytest.raises(EdgeError):
        compare_reports([], tmp_path / "out")


def test_output_must_be_a_directory(tmp_path):
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises(EdgeError, match="not a directory"):
        write_profile_report([make_run()], target)


def test_docs_describe_every_profile_json_field():
    docs = DOCS.read_text()
    from edge.profiling.model import Environment, Memory, PowerRecord, ProfileReport, RunSummary, Throughput

    for model in (ProfileReport, ProfileRun, Environment, Throughput, Memory, PowerRecord, RunSummary):
        for field in model.model_fields:
            assert f"`{field}`" in docs, f"{model.__name__}.{field} is not documented"
    for stage in Stage:
        assert f"`{stage.value}`" in docs
