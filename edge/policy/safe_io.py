"""Reading untrusted checkpoint files without executing code.

Tensors come through safetensors or `torch.load(weights_only=True)`; `dataset_stats.pkl`
through an unpickler whose every global is an exact (module, name) pair mapped to a guarded
callable of ours — nothing is imported or looked up by the name the file gives. The stats are
converted once, at load, to validated float64 numpy arrays; nothing downstream unpickles again.
"""

from __future__ import annotations

import io
import math
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from edge.errors import CheckpointError

# A real dataset_stats.pkl is a few hundred bytes; example_qpos may hold one episode's states.
MAX_STATS_BYTES = 16 << 20
MAX_STATS_VALUES = 1 << 20  # per array
REQUIRED_STATS = ("action_min", "action_max", "qpos_mean", "qpos_std")
OPTIONAL_STATS = ("action_mean", "action_std", "example_qpos")
# Every dtype a stats array may have (bool, signed/unsigned integers, floats).
_NUMERIC_KINDS = "biuf"


def _checked_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.hasobject or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise pickle.UnpicklingError(f"non-numeric dtype {dtype}")
    return dtype


def _dtype(spec, align=False, copy=True) -> np.dtype:
    """numpy.dtype as pickles call it: dtype('f8', False, True); only plain numeric type codes."""
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(f"dtype built from a {type(spec).__name__}")
    return _checked_dtype(np.dtype(spec, bool(align), bool(copy)))


class _NdarrayClass:
    """Stands for numpy.ndarray in a pickle: an argument to `_reconstruct`, never callable."""


def _reconstruct(subtype, shape, dtype) -> np.ndarray:
    """numpy.core.multiarray._reconstruct: the empty array that BUILD then fills from the pickle's
    bytes (ndarray.__setstate__ checks the byte count against the shape)."""
    if subtype is not _NdarrayClass:
        raise pickle.UnpicklingError("_reconstruct of a type other than numpy.ndarray")
    if math.prod(np.atleast_1d(shape).tolist()) > MAX_STATS_VALUES:
        raise pickle.UnpicklingError(f"array of shape {shape} is larger than {MAX_STATS_VALUES} values")
    return np.ndarray.__new__(np.ndarray, shape, _checked_dtype(np.dtype(dtype)))


def _scalar(dtype, data=None):
    """numpy.core.multiarray.scalar: a numpy scalar from its dtype and raw bytes."""
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes):
        raise pickle.UnpicklingError("scalar from something other than a numeric dtype and bytes")
    return np.frombuffer(data, dtype=_checked_dtype(dtype), count=1)[0]


def _frombuffer(buffer, dtype, shape, order):
    """numpy.core.numeric._frombuffer (pickle protocol 5)."""
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("_frombuffer without a dtype")
    return np.frombuffer(buffer, dtype=_checked_dtype(dtype)).reshape(shape, order=order)


def _latin1_bytes(text, encoding):
    """_codecs.encode as protocol 0-2 pickles use it for bytes: encode(str, 'latin1') only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode other than (str, 'latin1')")
    return text.encode("latin1")


# Exactly the globals a pickled (Ordered)dict of numpy arrays, numpy scalars, lists and tuples
# needs, under numpy 1.x (`numpy.core`) and 2.x (`numpy._core`) paths and pickle protocols 0-5
# (verified by tests/security/test_pickle.py with this numpy). Nothing else, no dotted names.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): _NdarrayClass,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"global {module}.{name}"[:200]) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent id")


def _stats_array(path: Path, key: str, value) -> np.ndarray:
    """One stats value → finite float64 array (1-D, or 2-D for example_qpos)."""
    try:
        arr = np.asarray(value)
        _checked_dtype(arr.dtype)
        arr = arr.astype(np.float64)
    except (ValueError, TypeError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"{path}: '{key}' is not a numeric array ({str(e)[:100]})") from e
    max_ndim = 2 if key == "example_qpos" else 1
    if arr.ndim < 1 or arr.ndim > max_ndim or arr.size == 0 or arr.size > MAX_STATS_VALUES:
        raise CheckpointError(f"{path}: '{key}' has shape {arr.shape} (expected a non-empty {max_ndim}-D array)")
    if not np.isfinite(arr).all():
        raise CheckpointError(f"{path}: '{key}' contains NaN or infinite values")
    return arr


def validate_stats(path: Path, data: dict) -> dict[str, np.ndarray]:
    """The stats TinyVLA normalizes with, as finite float64 arrays of consistent lengths."""
    missing = [k for k in REQUIRED_STATS if k not in data]
    if missing:
        raise CheckpointError(f"{path}: missing statistics {', '.join(missing)}")
    stats = {k: _stats_array(path, k, data[k]) for k in (*REQUIRED_STATS, *OPTIONAL_STATS) if data.get(k) is not None}
    for a, b in (("action_min", "action_max"), ("action_min", "action_mean"), ("action_min", "action_std"),
                 ("qpos_mean", "qpos_std")):
        if b in stats and stats[a].shape != stats[b].shape:
            raise CheckpointError(f"{path}: '{a}' has {stats[a].size} values, '{b}' has {stats[b].size}")
    if (stats["qpos_std"] <= 0).any():
        raise CheckpointError(f"{path}: 'qpos_std' must be positive (the reference clips it to >= 0.01)")
    return stats


def load_stats_pickle(path: Path) -> dict[str, np.ndarray]:
    """Unpickle `dataset_stats.pkl` (allow-listed numpy globals only) and validate its arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_STATS_BYTES + 1)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror}") from e
    if len(raw) > MAX_STATS_BYTES:
        raise CheckpointError(f"{path}: larger than {MAX_STATS_BYTES >> 20} MiB; not a dataset statistics file")
    try:
        data = _RestrictedUnpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to unpickle {e} (only numeric numpy arrays, numbers and plain containers are allowed)"
        ) from e
    except Exception as e:  # a damaged pickle raises many types (EOFError, KeyError, struct.error...)
        raise CheckpointError(f"{path}: not a readable pickle (truncated or corrupted?): {type(e).__name__}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of arrays, got {type(data).__name__}")
    return validate_stats(path, data)


def _torch_refusal(error: Exception) -> str:
    """The line of torch's weights-only refusal that says what was refused (not its advice)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for ln in lines:
        if "unsupported" in ln.lower() or "global" in ln.lower():
            return ln
    return next((ln for ln in lines if not ln.startswith(("Weights only load failed", "Check the documentation"))),
                type(error).__name__)


def load_tensors(path: Path, float32: bool = True) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch .bin (weights only), as float32 where floating
    (`float32=False`: as stored, for a caller that copies into float32 parameters itself)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to load: {_torch_refusal(e)[:200]} (weights-only loading admits tensors only)") from e
    except Exception as e:  # torch and safetensors raise many types for damaged files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot read tensors (truncated or corrupted?): {first[:200]}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a flat dict of tensors")
    return {k: (v.float() if float32 and v.is_floating_point() else v) for k, v in state.items()}
