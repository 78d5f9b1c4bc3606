"""Reading untrusted checkpoint files without executing code.

Tensors come through safetensors or `torch.load(weights_only=True)`; `dataset_stats.pkl`
through an unpickler that admits numpy arrays and plain containers only.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from edge.errors import CheckpointError

# The globals a pickled dict of numpy arrays needs (numpy 1.x and 2.x module paths).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS or (module == "numpy" and name.startswith("dtype")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def load_stats_pickle(path: Path) -> dict:
    """Unpickle `dataset_stats.pkl`, refusing anything but numpy arrays and plain containers."""
    try:
        data = _RestrictedUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to unpickle {e} (only numpy arrays and plain containers are allowed)"
        ) from e
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, ImportError) as e:
        raise CheckpointError(f"{path}: not a readable pickle (truncated or corrupted?): {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of arrays, got {type(data).__name__}")
    return data


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
    except Exception as e:  # torch and safetensors raise many types for damaged files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot read tensors (truncated or corrupted?): {first[:200]}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a flat dict of tensors")
    return {k: (v.float() if float32 and v.is_floating_point() else v) for k, v in state.items()}
