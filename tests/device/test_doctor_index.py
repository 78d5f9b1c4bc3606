"""`doctor` asks the JetPack wheel index for torch over real HTTP (a PEP 503 page on 127.0.0.1)."""

from __future__ import annotations

import http.server
import socket
import sys
import threading

import pytest

from edge.config import load_profile
from edge.device.detect import detect
from edge.doctor import DoctorContext, check_wheel_index
from edge.install.probes import ProbeResult
from tests.device.jetson_tree import AGX_THOR_JP70, ORIN_NANO_SUPER_JP62, X86_DEV_BOX

TORCH_PAGE = """<!DOCTYPE html>
<html><body><h1>Links for torch</h1>
<a href="../../+f/6ef/0a1b2c3d4e5f6/torch-2.8.0-cp310-cp310-linux_aarch64.whl#sha256=00">torch-2.8.0-cp310-cp310-linux_aarch64.whl</a><br/>
<a href="../../+f/7aa/0a1b2c3d4e5f7/torch-2.8.0-cp312-cp312-linux_aarch64.whl#sha256=01">torch-2.8.0-cp312-cp312-linux_aarch64.whl</a><br/>
<a href="../../+f/8bb/0a1b2c3d4e5f8/torch-2.8.0-cp310-cp310-manylinux_2_28_x86_64.whl#sha256=02">torch-2.8.0-cp310-cp310-manylinux_2_28_x86_64.whl</a><br/>
</body></html>
"""


class SimpleIndex(http.server.BaseHTTPRequestHandler):
    """Serves the torch project page at /jp6/cu126/torch/ only (a devpi-style platform/CUDA path)."""

    pages = {"/jp6/cu126/torch/": TORCH_PAGE}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        page = self.pages.get(self.path)
        self.send_response(200 if page else 404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write((page or "not found").encode())

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def index_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SimpleIndex)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def checks(root, torch_ok: bool = False) -> dict:
    probes = {"torch": ProbeResult(torch_ok, {}, "" if torch_ok else "no CUDA")}
    ctx = DoctorContext(device=detect(root, {}), profile=load_profile("orin-nano-8gb"), profile_note="",
                        root=str(root), python=sys.executable, probes=probes, camera=None, arm=None,
                        query_runner=None)
    (check,) = check_wheel_index(ctx)
    return check


def test_the_index_serves_torch_for_this_jetpacks_python(staged, index_server, monkeypatch):
    monkeypatch.setenv("TINYVLA_EDGE_INDEX_URL", index_server + "/{platform}/{cuda_tag}")
    check = checks(staged(ORIN_NANO_SUPER_JP62))
    assert check.status == "pass"
    assert "/jp6/cu126/torch/ serves 1 torch wheels for Python 3.10" in check.detail
    assert "torch-2.8.0-cp310-cp310-linux_aarch64.whl" in check.detail and "$TINYVLA_EDGE_INDEX_URL" in check.detail


def test_a_wrong_path_or_python_fails_before_install_needs_it(staged, index_server, monkeypatch):
    monkeypatch.setenv("TINYVLA_EDGE_INDEX_URL", index_server + "/{platform}/{cuda_tag}")
    thor = checks(staged(AGX_THOR_JP70))  # sbsa/cu130: not served here
    assert thor.status == "fail" and "/sbsa/cu130/torch/ answered HTTP 404" in thor.detail and thor.fix
    monkeypatch.setenv("TINYVLA_EDGE_INDEX_URL", index_server + "/jp6/cu126")  # pinned to JP6's path
    root = staged(ORIN_NANO_SUPER_JP62)
    (root / "usr/bin/python3").unlink()
    (root / "usr/bin/python3").symlink_to("python3.11")
    py311 = checks(root)
    assert py311.status == "fail" and "serves no torch wheel for Python 3.11 on aarch64" in py311.detail


def test_an_index_that_does_not_answer_fails_or_warns_once_torch_works(staged, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("TINYVLA_EDGE_INDEX_URL", f"http://127.0.0.1:{port}/{{platform}}/{{cuda_tag}}")
    root = staged(ORIN_NANO_SUPER_JP62)
    before = checks(root)
    assert before.status == "fail" and "did not answer" in before.detail
    assert checks(root, torch_ok=True).status == "warn"  # installed already: nothing needs it now


def test_no_index_check_off_a_jetson(staged):
    assert checks(staged(X86_DEV_BOX)).status == "skip"
