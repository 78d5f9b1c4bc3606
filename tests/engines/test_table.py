"""The engine table: probe and load per engine, onnxruntime never falls back to the CPU silently
(a faithful fake onnxruntime whose session runs only the CPU), older manifest names still load."""

import importlib.machinery
import importlib.util
import json
import shutil
import sys
import types

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edge.bundle import load_predictor
from edge.bundle.manifest import ComponentEntry
from edge.engines.table import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    ENGINES,
    LEGACY_ENGINES,
    TRT_PROVIDER,
    engine_name,
    load_onnx,
    load_torch,
    probe,
    profile_engine,
)
from edge.errors import BundleError
from quantize.pipeline import quantize_training_output
from tests.conftest import TORCH_PROFILE
from tests.security.conftest import edit_manifest

WEIGHT = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def tiny_onnx() -> bytes:
    """y = x @ W for x [1, 4]: a real model onnxruntime runs."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(WEIGHT, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


# ----------------------------------------------------------------------------- probe / load, real


@pytest.mark.parametrize("name,provider", [("onnxruntime-trt", TRT_PROVIDER), ("onnxruntime-cuda", CUDA_PROVIDER),
                                           ("onnxruntime-cpu", CPU_PROVIDER)])
def test_onnxruntime_probes_follow_the_available_providers(name, provider):
    result = probe(name)
    assert result.available == (provider in onnxruntime.get_available_providers())
    if not result.available:
        assert provider in result.reason and "onnxruntime-gpu" in result.reason and "\n" not in result.reason


def test_cuda_engines_probe_what_they_need():
    has = {m: importlib.util.find_spec(m) is not None for m in ("torch_tensorrt", "tensorrt", "bitsandbytes")}
    cuda = torch.cuda.is_available()
    assert probe("torch").available
    assert probe("torch-tensorrt").available == (has["torch_tensorrt"] and has["tensorrt"] and cuda)
    assert probe("bitsandbytes").available == (has["bitsandbytes"] and cuda)
    for name in ("torch-tensorrt", "bitsandbytes"):
        result = probe(name)
        if not result.available:
            assert any(word in result.reason for word in ("torch_tensorrt", "tensorrt", "bitsandbytes", "CUDA"))


def test_onnxruntime_cpu_loads_and_runs_a_real_model():
    runner = load_onnx("onnxruntime-cpu", tiny_onnx(), "tiny.onnx")
    assert runner.providers == [CPU_PROVIDER]
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    np.testing.assert_allclose(runner(x).numpy(), x.numpy() @ WEIGHT, rtol=1e-6)


@pytest.mark.parametrize("name", ["onnxruntime-trt", "onnxruntime-cuda"])
def test_a_gpu_provider_missing_from_the_real_onnxruntime_is_refused(name):
    if probe(name).available:
        pytest.skip(f"this onnxruntime has {name}'s provider")
    with pytest.raises(BundleError) as refused:
        load_onnx(name, tiny_onnx(), "vision.int8.onnx")
    message = str(refused.value)
    assert message.startswith("vision.int8.onnx: engine " + name) and "onnxruntime-gpu" in message
    assert "\n" not in message


def test_torch_engine_loads_and_runs():
    linear = torch.nn.Linear(4, 3)
    runner = load_torch("torch", linear, "fp32", [torch.zeros(1, 4)], "0" * 64, "vision")
    x = torch.randn(1, 4)
    torch.testing.assert_close(runner(x), linear(x.to(runner.device)).detach().cpu())


@pytest.mark.parametrize("name", ["torch-tensorrt", "bitsandbytes"])
def test_cuda_engines_refuse_in_one_line_where_they_cannot_run(name):
    result = probe(name)
    if result.available:
        pytest.skip(f"{name} can run here")
    with pytest.raises(BundleError, match=f"^language: engine {name} ") as refused:
        load_torch(name, torch.nn.Linear(4, 3), "int8" if name == "bitsandbytes" else "fp16",
                   [torch.zeros(1, 4)], "0" * 64, "language")
    assert result.reason in str(refused.value) and "\n" not in str(refused.value)


# ----------------------------------------------------------------------------- a fake onnxruntime


class FakeOnnxruntime(types.ModuleType):
    """onnxruntime's API shape (SessionOptions, GraphOptimizationLevel, InferenceSession with
    get_providers / get_inputs / run) with providers that are `listed` but may not `load`: like the
    real one, the session drops a provider it cannot create and goes on without it."""

    def __init__(self, listed: list[str], loads: list[str]):
        super().__init__("onnxruntime")
        self.__spec__ = importlib.machinery.ModuleSpec("onnxruntime", None)
        self.__version__ = "1.99.0-fake"
        self.listed, self.loads, self.sessions = listed, loads, []
        self.GraphOptimizationLevel = types.SimpleNamespace(ORT_ENABLE_ALL=99)
        fake = self

        class SessionOptions:
            def __init__(self):
                self.config, self.graph_optimization_level = {}, None
                self.intra_op_num_threads, self.optimized_model_filepath = 0, ""

            def add_session_config_entry(self, key: str, value: str) -> None:
                self.config[key] = value

        class InferenceSession:
            def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None, **kwargs):
                names = [p[0] if isinstance(p, tuple) else p for p in providers or [CPU_PROVIDER]]
                self.providers = [p for p in names if p in fake.listed and p in fake.loads]
                self.options, self.kwargs = sess_options, kwargs
                fake.sessions.append(self)

            def get_providers(self) -> list[str]:
                return list(self.providers)

            def get_inputs(self):
                return [types.SimpleNamespace(name="x", shape=[1, 4], type="tensor(float)")]

            def run(self, output_names, input_feed):
                return [input_feed["x"] @ WEIGHT]

        self.SessionOptions, self.InferenceSession = SessionOptions, InferenceSession

    def get_available_providers(self) -> list[str]:
        return list(self.listed)


def with_fake(monkeypatch, listed, loads) -> FakeOnnxruntime:
    fake = FakeOnnxruntime(listed, loads)
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    return fake


def test_a_provider_the_session_drops_is_refused_not_run_on_the_cpu(monkeypatch):
    """The Jetson case: the TensorRT EP is listed, but the session comes up with the CPU only."""
    fake = with_fake(monkeypatch, [TRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER], [CPU_PROVIDER])
    assert probe("onnxruntime-trt").available  # listed: only the built session tells the truth
    with pytest.raises(BundleError) as refused:
        load_onnx("onnxruntime-trt", tiny_onnx(), "vision.int8.onnx", trt_cache="/tmp/cache")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("vision.int8.onnx: needs onnxruntime's TensorrtExecutionProvider")
    assert "the session runs only CPUExecutionProvider" in message and "onnxruntime-gpu" in message
    session = fake.sessions[-1]  # the session options kept for measured reasons are still set
    assert session.options.config["session.x64quantprecision"] == "1"
    assert session.kwargs["disabled_optimizers"] == ["CommonSubexpressionElimination"]


def test_a_provider_onnxruntime_does_not_list_is_refused_before_a_session(monkeypatch):
    fake = with_fake(monkeypatch, [CPU_PROVIDER], [CPU_PROVIDER])
    assert not probe("onnxruntime-cuda").available
    with pytest.raises(BundleError, match="^language.onnx: engine onnxruntime-cuda needs onnxruntime's "
                                          "CUDAExecutionProvider, which onnxruntime 1.99.0-fake here lacks"):
        load_onnx("onnxruntime-cuda", tiny_onnx(), "language.onnx")
    assert fake.sessions == []


def test_the_provider_that_loads_runs(monkeypatch):
    with_fake(monkeypatch, [CUDA_PROVIDER, CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER])
    runner = load_onnx("onnxruntime-cuda", tiny_onnx(), "vision.onnx")
    assert runner.providers == [CUDA_PROVIDER, CPU_PROVIDER]
    x = torch.ones(1, 4)
    np.testing.assert_allclose(runner(x).numpy(), x.numpy() @ WEIGHT)


# ----------------------------------------------------------------------------- names


def test_older_names_map_by_file_kind_and_mismatches_are_refused():
    assert ComponentEntry(engine="tensorrt", precision="int8", file="vision.int8.onnx").engine == "onnxruntime-trt"
    assert ComponentEntry(engine="tensorrt", precision="fp16", file="backbone.safetensors").engine == "torch-tensorrt"
    assert ComponentEntry(engine="onnxruntime", precision="int8", file="vision.int8.onnx").engine == "onnxruntime-cpu"
    for old, by_kind in LEGACY_ENGINES.items():
        for kind, new in by_kind.items():
            assert engine_name(old, kind) == new and ENGINES[new].file_kind == kind
    with pytest.raises(ValueError, match="engine torch runs safetensors files, not onnx"):
        ComponentEntry(engine="torch", precision="fp32", file="vision.fp32.onnx")
    with pytest.raises(ValueError, match=r"engine onnxruntime \(an older name\) runs onnx files, not safetensors"):
        ComponentEntry(engine="onnxruntime", precision="fp32", file="backbone.safetensors")
    with pytest.raises(ValueError, match="unknown engine 'tensorflow'"):
        ComponentEntry(engine="tensorflow", precision="fp32", file="backbone.safetensors")
    with pytest.raises(ValueError, match="engine onnxruntime-cpu does not run fp16"):
        ComponentEntry(engine="onnxruntime-cpu", precision="fp16", file="vision.onnx")


def test_profile_specs_become_the_engine_that_runs_them():
    assert profile_engine("tensorrt", "int8") == "onnxruntime-trt"
    assert profile_engine("tensorrt", "fp16") == "torch-tensorrt"
    assert profile_engine("onnxruntime", "int8") == "onnxruntime-cpu"
    assert profile_engine("torch", "fp16") == "torch"
    assert profile_engine("bitsandbytes", "int8") == "bitsandbytes"


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory, tiny_output):
    """The shared fp32 bundle's profile, its components on onnxruntime (the profile's older name)."""
    profile = tmp_path_factory.mktemp("profile") / "onnx-fp32.yaml"
    profile.write_text(TORCH_PROFILE.format(name="onnx-fp32", precision="fp32").replace("engine: torch", "engine: onnxruntime"))
    out = tmp_path_factory.mktemp("bundles") / "onnx-fp32"
    quantize_training_output(tiny_output, profile, out, progress=False)
    return out


def renamed(onnx_bundle, tmp_path, engine: str):
    copy = shutil.copytree(onnx_bundle, tmp_path / engine)

    def rename(manifest):
        for component in manifest["components"].values():
            component["engine"] = engine

    edit_manifest(copy, rename)
    return copy


def test_a_manifest_with_older_names_still_loads_and_runs_the_same(onnx_bundle, tmp_path, tiny_observation):
    written = json.loads((onnx_bundle / "manifest.json").read_text())
    assert {c["engine"] for c in written["components"].values()} == {"onnxruntime-cpu"}
    data = np.load(tiny_observation)
    images, state, instruction = [data["image_0"], data["image_1"]], data["state"], str(data["instruction"])
    old = load_predictor(renamed(onnx_bundle, tmp_path, "onnxruntime"))
    new = load_predictor(onnx_bundle)
    noise = torch.randn((1, new.chunk_size, new.action_dim), generator=torch.Generator().manual_seed(1))
    assert old.manifest.components["vision"].engine == "onnxruntime-cpu"
    np.testing.assert_array_equal(old.predict(images, state, instruction, noise).normalized,
                                  new.predict(images, state, instruction, noise).normalized)


def test_an_old_tensorrt_onnx_bundle_is_refused_where_the_trt_provider_is_missing(onnx_bundle, tmp_path):
    if probe("onnxruntime-trt").available:
        pytest.skip("this onnxruntime has the TensorRT execution provider")
    with pytest.raises(BundleError, match="^vision: engine onnxruntime-trt needs onnxruntime's TensorrtExecutionProvider"):
        load_predictor(renamed(onnx_bundle, tmp_path, "tensorrt"))


# ----------------------------------------------------------------------------- doctor


@pytest.fixture(scope="module")
def engine_probe():
    """The doctor's engine-table probe, run in a separate interpreter as doctor runs it."""
    from edge.doctor import ENGINE_TABLE_PROBE
    from edge.install.probes import run_probe

    return run_probe(sys.executable, ENGINE_TABLE_PROBE)


def engine_checks(engine_probe, profile: str) -> dict:
    from edge.config import load_profile
    from edge.device.detect import detect
    from edge.doctor import DoctorContext, check_engines

    ctx = DoctorContext(device=detect(None, {}), profile=load_profile(profile), profile_note="from --profile",
                        root="/", python=sys.executable, probes={"engines": engine_probe}, camera=None, arm=None,
                        query_runner=None)
    return {c.name: c for c in check_engines(ctx)}


def test_doctor_checks_every_engine_and_fails_those_the_profile_needs(engine_probe):
    assert engine_probe.ok
    cpu = engine_checks(engine_probe, "cpu-dev")
    assert set(cpu) == {f"engine:{name}" for name in ENGINES}
    for name in ENGINES:
        assert (cpu[f"engine:{name}"].status == "pass") == probe(name).available
    assert "vision, language" in cpu["engine:onnxruntime-cpu"].detail
    nano = engine_checks(engine_probe, "orin-nano-8gb")  # int8 TensorRT: the QDQ graph on ORT's TensorRT EP
    trt = nano["engine:onnxruntime-trt"]
    assert "vision, language" in trt.detail
    assert trt.status == ("pass" if probe("onnxruntime-trt").available else "fail")
    if trt.status == "fail":
        assert TRT_PROVIDER in trt.detail and "onnxruntime-gpu" in trt.detail
    assert nano["engine:torch-tensorrt"].status in ("pass", "skip")  # not needed by an int8 profile
