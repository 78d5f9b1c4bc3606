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
from edge.profiling.report import Better, best_indices
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


def table(markdown: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table."""
    lines = markdown.split("## Results")[1].split("\n## ")[0].strip().splitlines()
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines if line.startswith("|")]
    return rows[0], rows[2:]


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


@pytest.mark.parametrize("name", ["latency_cdf.png", "power_trace.png", "energy_latency.png"])
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


def test_best_value_per_column_is_bold(written):
    header, rows = table(written.markdown.read_text())
    assert [row[0] for row in rows] == ["orin-nx-16gb", "orin-nano-8gb"]
    col = {name: header.index(name) for name in header}
    # The NX is twice as fast; the Nano draws less power and, here, less energy per inference.
    assert rows[0][col["tick p50"]].startswith("**") and not rows[1][col["tick p50"]].startswith("**")
    assert rows[0][col["vision p99"]].startswith("**")
    assert rows[0][col["inferences/s"]] == "**20.0**" and rows[1][col["inferences/s"]] == "10.0"
    assert rows[1][col["power (W)"]] == "**6.00**" and rows[0][col["power (W)"]] == "14.00"
    assert rows[1][col["J/inference"]].startswith("**")
    # Equal values are both best; columns nobody has are not marked.
    assert rows[0][col["control Hz"]] == rows[1][col["control Hz"]] == "**30.0**"
    assert rows[0][col["CUDA peak (MiB)"]] == "n/a"
    # Not a figure of merit: never marked.
    assert not rows[0][col["ticks"]].startswith("**")
    # Stages nobody ran are not columns.
    assert "serial p50" not in header and "head p50" in header


def test_single_run_marks_nothing(tmp_path):
    files = write_profile_report([make_run()], tmp_path)
    _, rows = table(files.markdown.read_text())
    assert not any("**" in cell for cell in rows[0])


def test_best_indices():
    assert best_indices([3.0, None, 1.0, 1.0], Better.LOWER) == {2, 3}
    assert best_indices([3.0, None, 1.0], Better.HIGHER) == {0}
    assert best_indices([3.0, None], Better.LOWER) == set()
    assert best_indices([3.0, 1.0], None) == set()


def test_unavailable_power_is_said_not_zeroed(tmp_path):
    files = write_profile_report([make_run(watts=None), make_run("other", watts=5.0)], tmp_path)
    markdown = files.markdown.read_text()
    assert "power: unavailable (rapl: no RAPL zones under /sys/class/powercap)" in markdown
    header, rows = table(markdown)
    for name in ("power (W)", "J/inference", "J/action"):
        assert rows[0][header.index(name)] == "unavailable"
    stored = json.loads(files.json.read_text())["runs"][0]
    assert stored["power"]["trace"] == [] and stored["energy_per_inference_j"] is None
    assert (tmp_path / "power_trace.png").stat().st_size > 10_000


def test_warnings_are_loud_in_markdown_and_json(tmp_path):
    run = make_run("orin-nano-8gb", is_jetson=True, power_mode="15W", expected_power_mode="25W", clocks_locked=True)
    files = write_profile_report([run], tmp_path)
    assert "> **WARNING (orin-nano-8gb)**: power mode is 15W, the profile wants 25W" in files.markdown.read_text()
    stored = json.loads(files.json.read_text())["runs"][0]["warnings"]
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
    assert rows[1][header.index("tick p50")].startswith("**")  # the workstation is faster
    assert rows[1][header.index("power (W)")] == "unavailable"
    assert all((files.directory / p.name).exists() for p in files.plots)


def test_same_profile_on_the_same_device_is_numbered(tmp_path):
    files = write_profile_report([make_run(seed=1), make_run(seed=2)], tmp_path)
    assert [s.label for s in load_profile_report(files.json).summaries] == [
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
