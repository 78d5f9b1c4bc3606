"""The CLI checks its arguments while parsing: one line, exit 1, nothing heavy imported; -h,
bare flags in help, shell completion, did-you-mean for profiles, -v/-q and warnings in the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from edge.cli import main
from edge.config import load_profile
from edge.errors import EdgeError

HEAVY = ("torch", "transformers", "onnxruntime", "diffusers", "peft")

# Each case: arguments, then a phrase the one-line error must contain.
BAD_ARGUMENTS = [
    (["quantize", "ckpt", "--profile", "cpu-dev", "--output", "b", "--precision", "int4"],
     "'int4' is not one of 'fp32', 'fp16', 'bf16', 'int8'"),
    (["quantize", "ckpt", "--profile", "cpu-dve", "--output", "b"], "did you mean 'cpu-dev'?"),
    (["profile", "--profile", "orin-nano"], "did you mean 'orin-nano-8gb'?"),
    (["profile", "--profile", "cpu-dev", "--model", "tinyvla-x"], "'tinyvla-x' is not one of 'tinyvla-s'"),
    (["distill", "src", "--steps", "2", "--method", "fast"], "'fast' is not one of 'output-matching', 'progressive', 'consistency'"),
    (["inspect", "ckpt", "--noise", "/no/such/noise.npy"], "'/no/such/noise.npy' does not exist"),
    (["capture", "--camera", "webcam:0", "--output", "out"], "unknown camera spec 'webcam:0'"),
    (["install", "--profile", "../../etc/passwd"], "unknown profile '../../etc/passwd'"),
    (["sim-arm", "--dof", "seven"], "Input should be a valid integer"),
    (["profile", "--no-such-option"], "No such option: --no-such-option"),
    (["sim-arm", "--space", "cartesian"], "'cartesian' is not one of 'ee', 'joint'"),
    (["-v", "-q", "doctor"], "-v and -q contradict each other"),
]

# Runs every case in one interpreter, then reports which heavy modules any of them imported.
PARSE_ONLY = textwrap.dedent("""
    import contextlib, io, json, sys
    from edge.cli import main
    results = []
    for argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(argv)
        results.append({"code": code, "stderr": err.getvalue()})
    heavy = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
    print(json.dumps({"results": results, "heavy": heavy}))
""")


def test_bad_arguments_are_one_line_exit_1_before_any_heavy_import(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PARSE_ONLY, json.dumps([a for a, _ in BAD_ARGUMENTS]),
                           json.dumps(HEAVY)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["heavy"] == []
    for (argv, phrase), result in zip(BAD_ARGUMENTS, report["results"]):
        lines = result["stderr"].splitlines()
        assert result["code"] == 1, (argv, result)
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, lines)
        assert phrase in lines[0], (argv, lines[0])
        assert "Traceback" not in lines[0] and "errors.pydantic.dev" not in lines[0]


def test_precision_errors_from_the_pipeline_keep_the_pydantic_reason():
    from quantize.preflight import component_specs

    with pytest.raises(EdgeError) as literal:
        component_specs(load_profile("cpu-dev"), "int4")
    assert str(literal.value) == "--precision int4: Input should be 'fp32', 'fp16', 'bf16' or 'int8' (profile cpu-dev)"
    with pytest.raises(EdgeError, match=r"engine onnxruntime does not support precision fp16 \(supported: fp32, int8\)"):
        component_specs(load_profile("cpu-dev"), "fp16")


def test_short_help_shows_flags_bare(capsys):
    assert main(["-h"]) == 0
    top = capsys.readouterr().out
    assert "Usage: tinyvla-edge" in top and "--install-completion" in top
    import typer.main

    from edge.cli import app

    for name in typer.main.get_command(app).commands:
        assert main([name, "-h"]) == 0
        text = capsys.readouterr().out
        assert "--help" in text and "<bool>" not in text, name


def completions(words: str) -> list[str]:
    env = {**os.environ, "_TINYVLA_EDGE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "edge.cli"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_shell_completion_offers_commands_profiles_and_choices():
    assert completions("tinyvla-edge pro") == ["profile"]
    assert completions("tinyvla-edge profile --profile orin-n") == ["orin-nano-8gb", "orin-nx-16gb"]
    assert completions("tinyvla-edge quantize --precision ") == ["fp32", "fp16", "bf16", "int8"]


LOGGING = textwrap.dedent("""
    import logging, sys, warnings
    from edge.cli import app, main

    @app.command("noisy")
    def noisy() -> None:
        warnings.warn("a library is unhappy")
        logging.getLogger("somewhere").info("a detail")
        logging.getLogger("somewhere").debug("a finer detail")

    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("flags, shown, hidden", [
    ([], ["WARNING", "a library is unhappy"], ["a detail"]),
    (["-v"], ["a library is unhappy", "a detail"], ["a finer detail"]),
    (["-vv"], ["a detail", "a finer detail"], []),
    (["-q"], [], ["a library is unhappy", "a detail"]),
])
def test_verbosity_and_library_warnings_go_through_the_log(flags, shown, hidden):
    proc = subprocess.run([sys.executable, "-c", LOGGING, *flags, "noisy"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert all(text in proc.stderr for text in shown), proc.stderr
    assert not any(text in proc.stderr for text in hidden), proc.stderr
    assert "warnings.warn(" not in proc.stderr  # not the raw warnings printout with its source line
