"""`distill --method` is checked before anything is loaded or computed."""

import pytest

import quantize.distill.command as command
from edge.cli import main


def test_an_unknown_method_is_refused_before_any_work(tiny_output, tmp_path, capsys, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("work started before the method was checked")

    monkeypatch.setattr(command, "load_source", must_not_run)
    monkeypatch.setattr(command, "compute_conditions", must_not_run)
    args = ["distill", str(tiny_output), "--steps", "2", "--synthetic-calibration", "10", "--method", "fast",
            "--output", str(tmp_path / "o")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'fast' is not one of 'output-matching', 'progressive', 'consistency'" in err
    with pytest.raises(command.EdgeError, match="unknown distillation method 'fast'"):
        command.run_distill(tiny_output, 2, synthetic_calibration=10, method="fast", output=tmp_path / "o")
    assert not (tmp_path / "o").exists()
