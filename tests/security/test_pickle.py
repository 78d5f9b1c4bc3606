"""dataset_stats.pkl: the allow-listed unpickler refuses every gadget family and still reads the
reference's real format (tinyvla-format.md §2.7) under numpy 1.x and 2.x module paths."""

import os
import pickle
import pickletools
import shutil
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

from edge.errors import CheckpointError
from edge.policy.safe_io import load_stats_pickle
from tests.security.pickles import call, dotted_eval_gadget, finish, global_, text

MARKER = "pwned"


def command(tmp_path) -> str:
    return f"touch {tmp_path / MARKER}"


class Reduce:
    """Pickles as fn(*args): the classic __reduce__ gadget."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def gadgets(tmp_path) -> dict[str, bytes]:
    cmd = command(tmp_path)
    code = f"__import__('os').system({cmd!r})"
    imported_os = call(global_("builtins", "__import__"), text("os"))
    return {
        # The proof of concept: a dotted name under an allowed prefix reaches eval.
        "dotted numpy.dtypes.__builtins__.get": dotted_eval_gadget(cmd),
        "dotted under an allowed global": finish(call(global_("numpy._core.multiarray", "_reconstruct.__globals__"))),
        "reduce os.system": pickle.dumps({"action_min": Reduce(os.system, cmd)}),
        "reduce eval": pickle.dumps(Reduce(eval, code)),
        "reduce exec": pickle.dumps(Reduce(exec, code)),
        "reduce getattr": finish(call(call(global_("builtins", "getattr"), imported_os, text("system")), text(cmd))),
        "builtins.__import__": finish(call(global_("builtins", "__import__"), text("os"))),
        "copyreg._reconstructor": finish(call(global_("copyreg", "_reconstructor"), global_("builtins", "object"),
                                              global_("builtins", "object"), b"N")),
        "nested in a valid dict": pickle.dumps({"action_min": np.zeros(3), "qpos_std": [np.ones(2), (Reduce(os.system, cmd),)]}),
        "protocol 0 GLOBAL": f"cposix\nsystem\n(S'{cmd}'\ntR.".encode(),
        "protocol 0 INST": f"(S'{cmd}'\niposix\nsystem\n.".encode(),
    }


GADGET_NAMES = list(gadgets(__import__("pathlib").Path("/x")))


def test_the_dotted_gadget_is_live_with_a_plain_unpickler(tmp_path):
    """The payload the tests refuse really runs code when nothing stops it (so the tests can fail)."""
    pickle.loads(dotted_eval_gadget(command(tmp_path)))
    assert (tmp_path / MARKER).exists()


@pytest.mark.parametrize("name", GADGET_NAMES)
def test_gadget_is_refused_in_one_line_without_running(tmp_path, name):
    path = tmp_path / "dataset_stats.pkl"
    path.write_bytes(gadgets(tmp_path)[name])
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_stats_pickle(path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / MARKER).exists()


def test_inspect_refuses_the_dotted_gadget_in_one_line(tiny_output, tmp_path):
    target = shutil.copytree(tiny_output, tmp_path / "run")
    (target / "dataset_stats.pkl").write_bytes(dotted_eval_gadget(command(tmp_path)))
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "inspect", str(target)], capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1
    assert "refused to unpickle global numpy.dtypes.__builtins__.get" in lines[0]
    assert not (tmp_path / MARKER).exists()


def reference_stats(dtype) -> dict:
    """What train_tinyvla.py pickles: numpy arrays from torch tensors; example_qpos is one episode."""
    rng = np.random.default_rng(0)
    return {
        "action_mean": rng.normal(size=10).astype(dtype), "action_std": rng.uniform(0.1, 1, 10).astype(dtype),
        "action_min": rng.uniform(-2, -1, 10).astype(dtype), "action_max": rng.uniform(1, 2, 10).astype(dtype),
        "qpos_mean": rng.normal(size=7).astype(dtype), "qpos_std": rng.uniform(0.01, 1, 7).astype(dtype),
        "example_qpos": rng.normal(size=(50, 7)).astype(dtype),
    }


def as_numpy1(data: bytes) -> bytes:
    """The same pickle as numpy 1.x writes it (module numpy.core instead of numpy._core); re-framed by
    pickletools.optimize, because protocols 4-5 record frame lengths."""
    data = data.replace(b"\x8c\x16numpy._core.multiarray", b"\x8c\x15numpy.core.multiarray")
    data = data.replace(b"\x8c\x13numpy._core.numeric", b"\x8c\x12numpy.core.numeric")
    return pickletools.optimize(data.replace(b"numpy._core.", b"numpy.core."))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("numpy_major", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_stats_load_under_every_protocol(tmp_path, protocol, numpy_major, dtype):
    stats = reference_stats(dtype)
    data = pickle.dumps(stats, protocol=protocol)
    path = tmp_path / "dataset_stats.pkl"
    path.write_bytes(as_numpy1(data) if numpy_major == 1 else data)
    if numpy_major == 1:
        assert b"numpy._core" not in path.read_bytes()
    loaded = load_stats_pickle(path)
    assert set(loaded) == set(stats)
    for key, value in stats.items():
        assert loaded[key].dtype == np.float64 and np.array_equal(loaded[key], value.astype(np.float64))


def test_scalars_lists_tuples_ints_and_ordered_dicts_load(tmp_path):
    stats = OrderedDict(
        action_min=[np.float32(-1), np.float64(-2), -3],
        action_max=(np.float32(1), 2.0, np.int64(3)),
        qpos_mean=np.array([0, 1], dtype=np.int32),
        qpos_std=np.array([0.5, 0.25]),
        action_mean=None,
        extra_note=np.bool_(True),
    )
    path = tmp_path / "dataset_stats.pkl"
    path.write_bytes(pickle.dumps(stats))
    loaded = load_stats_pickle(path)
    assert loaded["action_min"].tolist() == [-1, -2, -3] and loaded["action_max"].tolist() == [1, 2, 3]
    assert loaded["qpos_mean"].dtype == np.float64 and "action_mean" not in loaded and "extra_note" not in loaded


@pytest.mark.parametrize(("change", "message"), [
    ({"action_min": np.array([np.nan] * 10)}, "'action_min' contains NaN or infinite"),
    ({"qpos_std": np.array([np.inf] * 7)}, "'qpos_std' contains NaN or infinite"),
    ({"qpos_std": np.zeros(7)}, "'qpos_std' must be positive"),
    ({"action_max": np.ones(9)}, "'action_min' has 10 values, 'action_max' has 9"),
    ({"qpos_mean": np.ones((7, 1))}, "'qpos_mean' has shape"),
    ({"qpos_mean": ["a"] * 7}, "'qpos_mean' is not a numeric array"),
    ({"qpos_mean": np.array(["a"] * 7)}, "refused to unpickle non-numeric dtype <U1"),
    ({"action_max": None}, "missing statistics action_max"),
])
def test_invalid_stats_are_refused_in_one_line(tmp_path, change, message):
    stats = {k: v for k, v in {**reference_stats(np.float32), **change}.items() if v is not None}
    path = tmp_path / "dataset_stats.pkl"
    path.write_bytes(pickle.dumps(stats))
    with pytest.raises(CheckpointError, match=message) as info:
        load_stats_pickle(path)
    assert "\n" not in str(info.value)


def test_object_arrays_and_huge_arrays_are_refused(tmp_path):
    path = tmp_path / "dataset_stats.pkl"
    path.write_bytes(pickle.dumps({"action_min": np.array([1, "x"], dtype=object)}))
    with pytest.raises(CheckpointError, match="refused to unpickle non-numeric dtype object"):
        load_stats_pickle(path)
    path.write_bytes(finish(call(global_("numpy._core.multiarray", "_reconstruct"), global_("numpy", "ndarray"),
                                 b"J\x00\x00\x00\x40\x85", call(global_("numpy", "dtype"), text("f8")))))
    with pytest.raises(CheckpointError, match="larger than"):
        load_stats_pickle(path)
