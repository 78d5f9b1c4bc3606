"""Profiling results: the typed run model, stage statistics, warning rules and the report.

The measurement loop builds one `ProfileRun` per profile and calls `write_profile_report`;
`compare_reports` rebuilds a report from earlier profile.json files. Plotting imports
matplotlib only when a report is written.
"""

from edge.profiling.checks import evaluate_warnings, with_warnings
from edge.profiling.model import (
    SCHEMA_VERSION,
    ControlFigures,
    Environment,
    MeasurementWarning,
    Memory,
    PowerRecord,
    ProfileReport,
    ProfileRun,
    RunMode,
    Stage,
    ThermalSample,
    Throughput,
    WarningKind,
    run_energy,
)
from edge.profiling.report import ReportFiles, compare_reports, load_profile_report, write_profile_report
from edge.profiling.stats import StageSummary, inferences_per_second, summarize_stage

__all__ = [
    "SCHEMA_VERSION",
    "ControlFigures",
    "Environment",
    "MeasurementWarning",
    "Memory",
    "PowerRecord",
    "ProfileReport",
    "ProfileRun",
    "ReportFiles",
    "RunMode",
    "Stage",
    "StageSummary",
    "ThermalSample",
    "Throughput",
    "WarningKind",
    "compare_reports",
    "evaluate_warnings",
    "inferences_per_second",
    "load_profile_report",
    "run_energy",
    "summarize_stage",
    "with_warnings",
    "write_profile_report",
]
