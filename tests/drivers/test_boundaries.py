"""drivers/ imports no torch, nothing from edge or quantize, and no vendor SDK at import time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import drivers
from drivers.errors import DriverError

DRIVERS = Path(drivers.__file__).parent
FORBIDDEN = {"torch", "edge", "quantize"}


def _imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_drivers_source_imports_torch_edge_or_quantize():
    offenders = {
        str(path.relative_to(DRIVERS)): sorted(_imported_roots(path.read_text()) & FORBIDDEN)
        for path in sorted(DRIVERS.rglob("*.py"))
    }
    offenders = {name: found for name, found in offenders.items() if found}
    assert not offenders, f"drivers modules import forbidden packages: {offenders}"
    scanned = {str(p.relative_to(DRIVERS)) for p in DRIVERS.rglob("*.py")}
    assert scanned >= {"camera/base.py", "arm/serial_arm.py", "camera/realsense.py", "sim/firmware.py"}


def test_drivers_is_laid_out_by_concern():
    # One subpackage per concern (cameras, arms, the simulated arm); only shared errors and the
    # device probe sit at the top.
    top = sorted(p.name for p in DRIVERS.glob("*.py"))
    assert top == ["__init__.py", "errors.py", "probe.py"]
    assert {p.name for p in DRIVERS.iterdir() if p.is_dir() and p.name != "__pycache__"} == {"arm", "camera", "sim"}


def test_the_source_scan_catches_lazy_imports():
    # The scan walks the whole tree, so an import inside a function counts too.
    assert "torch" in _imported_roots("def f():\n    import torch.nn as nn\n")
    assert "edge" in _imported_roots("def f():\n    from edge.cli import main\n")


def test_importing_every_drivers_module_loads_neither_torch_nor_the_realsense_sdk():
    script = (
        "import json, pkgutil, importlib, sys, drivers\n"
        "names = [m.name for m in pkgutil.walk_packages(drivers.__path__, 'drivers.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(json.dumps({'modules': names, 'torch': 'torch' in sys.modules,\n"
        "  'pyrealsense2': 'pyrealsense2' in sys.modules,\n"
        "  'edge': any(m == 'edge' or m.startswith('edge.') for m in sys.modules)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=DRIVERS.parent)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "drivers.arm.serial_arm" in result["modules"] and "drivers.camera.realsense" in result["modules"]
    assert result == {**result, "torch": False, "pyrealsense2": False, "edge": False}


def test_missing_pyrealsense2_names_the_extra_to_install(monkeypatch, tmp_path):
    from drivers.camera import open_camera

    recording = tmp_path / "x.db3"
    recording.write_bytes(b"not used")
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # makes `import pyrealsense2` fail
    with pytest.raises(DriverError, match=r"pip install 'tinyvla-edge\[realsense\]'"):
        open_camera(f"recording:{recording}", "cam")
