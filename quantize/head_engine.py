"""The head's engine at bundle time: the ONNX network for CPUs (fp32 or int8), and every head's
fidelity figure.

fp32 (`onnxruntime-cpu`): the noise-prediction network exported to ONNX as it is; onnxruntime
runs the same arithmetic, faster than torch eager on the CPUs measured (benchmarks/RESULTS.md).

int8 (`onnxruntime-cpu`): the noise-prediction network (`ConditionalUnet1D.denoise`: sample,
step feature, condition → noise) is exported to ONNX and its wide convolutions are quantized to
QDQ int8 with the backbone's recipe (`quantize.int8`: per-channel symmetric weights, symmetric
activations); the rest stays fp32 (`wide_convolutions` says why). It is calibrated on the head's
own inputs: the fp32 sampler, with the bundle's own timesteps, run on
calibration conditions from several noises, each step's (sample, step feature, condition)
recorded, so every timestep's activation ranges are covered. The DDIM loop stays the verified
torch sampler; only the network call is swapped (`edge.engines.head_runners.SampledHead`).

Fidelity (every head that is not the fp32 torch head): its chunk vs the fp32 head's on the same
held-out condition and noise, RMSE in the normalized action space (target ≤ 0.01).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge.config import ComponentSpec
from edge.engines.head_runners import NETWORK_INPUTS, SampledHead
from edge.engines.table import ONNX, HeadEngine, head_engine, load_head
from edge.errors import EdgeError
from edge.policy.head import ConditionalUnet1D
from edge.policy.policy import Policy
from edge.policy.sampler import DDIMSampler
from quantize.calibration import Observation

FIDELITY_TARGET = 0.01
NOISES_PER_CONDITION = 4
FIDELITY_NOISES = 2
NETWORK_FILE = "head.int8.onnx"
FP32_NETWORK_FILE = "head.fp32.onnx"
# A convolution is int8 when it holds at least this share of the largest one's weights.
WIDE_SHARE = 0.5


class NoiseNetwork(nn.Module):
    """`ConditionalUnet1D.denoise` as a module with the inputs every head engine takes."""

    def __init__(self, head: ConditionalUnet1D):
        super().__init__()
        self.head = head

    def forward(self, sample: torch.Tensor, step_feature: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head.denoise(sample, step_feature, cond)


def profile_head(spec: ComponentSpec) -> HeadEngine:
    """The head row for the profile's `model.head`, or one line naming the head engines."""
    try:
        return head_engine(spec.engine, spec.precision)
    except ValueError as e:
        raise EdgeError(f"profile model.head: {e}") from e


@torch.inference_mode()
def network_inputs(head: ConditionalUnet1D, sampler: DDIMSampler, conditions: torch.Tensor,
                   noises_per_condition: int = NOISES_PER_CONDITION, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The network's inputs at every step of the fp32 sampler, for each condition [N, H] and
    `noises_per_condition` noises: the head's own calibration data."""
    cfg = head.cfg
    generator = torch.Generator().manual_seed(seed)
    features = head.step_features(sampler.timesteps)
    feeds: list[dict[str, np.ndarray]] = []

    def record(i: int, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        feeds.append(dict(zip(NETWORK_INPUTS, (x.numpy().copy(), features[i : i + 1].numpy().copy(), cond.numpy().copy()))))
        return head.denoise(x, features[i : i + 1], cond)

    for cond in conditions:
        for _ in range(noises_per_condition):
            noise = torch.randn((1, cfg.chunk_size, cfg.action_dim), generator=generator)
            sampler.sample(lambda i, x, c=cond[None]: record(i, x, c), noise)
    return feeds


def wide_convolutions(model_path: Path, share: float = WIDE_SHARE) -> list[str]:
    """The Conv nodes with at least `share` of the largest Conv's weights: the ones int8 pays for.

    Why not every layer: the DDIM x0 estimate at the first step of a few-step schedule (t = 90 of
    100) multiplies the network's error by sqrt((1 - ᾱ) / ᾱ) ≈ 6.3, so a chunk within 0.01 of the
    fp32 head needs the noise estimate within ~0.2 %. Measured one node at a time (tiny head): every
    FiLM Gemm costs ~3 % (they share one quantized input, the Mish'd condition), the narrow convs at
    the UNet's ends 1-1.7 % each, the wide middle convs 0.2-0.5 %, and those hold most of the bytes.
    TinyVLA-S dims: every conv int8 gave chunk RMSE 0.144 (K=2) / 0.045 (K=10); the wide ones only
    (62 % of the weight bytes) 0.0027 / 0.0078."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    weights = {i.name: int(np.prod(i.dims)) for i in model.graph.initializer}
    sizes = {n.name: weights.get(n.input[1], 0) for n in model.graph.node if n.op_type == "Conv"}
    largest = max(sizes.values(), default=0)
    return [name for name, size in sizes.items() if largest and size >= share * largest]


def export_fp32_network(head: ConditionalUnet1D, path: Path) -> dict:
    """Write the fp32 noise network to `path` (one self-contained file); returns its manifest fields."""
    import onnx

    from quantize.onnx_export import EXPORT_RECIPE, export_onnx

    cfg = head.cfg
    args = (torch.zeros(1, cfg.chunk_size, cfg.action_dim), torch.zeros(1, cfg.step_embed_dim),
            torch.zeros(1, head.combine.out_features))
    export_onnx(NoiseNetwork(head), args, path, list(NETWORK_INPUTS), ["eps"])
    external = path.with_name(path.name + ".data")
    if external.exists():  # bundles hash and load the network as one file's bytes
        onnx.save(onnx.load(str(path)), str(path))
        external.unlink()
    return {"network_file": path.name, "export": EXPORT_RECIPE}


def export_int8_network(head: ConditionalUnet1D, sampler: DDIMSampler, conditions: torch.Tensor, out: Path,
                        method: str = "percentile", noises_per_condition: int = NOISES_PER_CONDITION) -> dict:
    """Write `out/head.int8.onnx` calibrated on `conditions`; returns its manifest fields."""
    from quantize.int8 import quantize_static_qdq
    from quantize.onnx_export import EXPORT_RECIPE

    fp32 = out / FP32_NETWORK_FILE
    export_fp32_network(head, fp32)
    try:
        wide = wide_convolutions(fp32)
        quantization = quantize_static_qdq(fp32, out / NETWORK_FILE, network_inputs(head, sampler, conditions, noises_per_condition),
                                           method, nodes=wide)
    finally:
        fp32.unlink(missing_ok=True)  # export_fp32_network leaves no external-data file
    quantization["quantized_ops"] = [f"Conv with >= {WIDE_SHARE:g} x the largest Conv's weights; the rest fp32"]
    quantization["calibrated_on"] = (f"the fp32 sampler's inputs at timesteps {sampler.timesteps.tolist()}, "
                                     f"{len(conditions)} conditions x {noises_per_condition} noises")
    return {"network_file": NETWORK_FILE, "export": EXPORT_RECIPE, "quantization": quantization}


@torch.inference_mode()
def head_fidelity(runner, head: ConditionalUnet1D, sampler: DDIMSampler, conditions: torch.Tensor,
                  noises: int = FIDELITY_NOISES, seed: int = 1) -> dict:
    """`runner`'s chunks vs the fp32 head's (same sampler, condition and noise): normalized RMSE."""
    reference = SampledHead(head.denoise, head, sampler)
    cfg = head.cfg
    generator = torch.Generator().manual_seed(seed)
    errors = []
    for cond in conditions:
        for _ in range(noises):
            noise = torch.randn((1, cfg.chunk_size, cfg.action_dim), generator=generator)
            errors.append((runner(cond[None], noise) - reference(cond[None], noise)).numpy())
    err = np.stack(errors)
    rmse = float(np.sqrt(np.mean(err**2)))
    return {"action_nrmse": rmse, "action_max_abs": float(np.max(np.abs(err))), "target": FIDELITY_TARGET,
            "within_target": rmse <= FIDELITY_TARGET, "chunks": len(errors),
            "reference": f"fp32 torch head, same DDIM timesteps {sampler.timesteps.tolist()}, condition and noise"}


def head_engine_fields(policy: Policy, head: ConditionalUnet1D, sampler: DDIMSampler, spec: ComponentSpec, out: Path,
                       calibrate_on: list[Observation], held_out: list[Observation], method: str = "percentile") -> dict:
    """The head entry's engine fields for the profile's `model.head` (engine, precision, the int8
    network where it has one, fidelity); writes the network file into `out`."""
    from quantize.distill.conditions import compute_conditions

    row = profile_head(spec)
    fields: dict = {"engine": row.engine, "precision": row.precision}
    if (row.engine, row.precision) == ("torch", "fp32"):
        return fields
    network = None
    if row.file_kind == ONNX and row.precision == "fp32":
        fields |= export_fp32_network(head, out / FP32_NETWORK_FILE)
        network = out / FP32_NETWORK_FILE
    elif row.file_kind == ONNX:
        if not calibrate_on:
            raise EdgeError("an int8 head needs calibration frames: pass --calibration DIR or --calibration-recording "
                            "FILE (tinyvla-edge capture writes them); int8 is never calibrated on noise")
        fields |= export_int8_network(head, sampler, compute_conditions(policy, calibrate_on), out, method)
        network = out / NETWORK_FILE
    probe = row.probe()
    if not probe.available:  # a CUDA head built on a CPU workstation: measured on the device
        fields["fidelity"] = {"measured": False, "reason": f"{row.runs} cannot run on the machine that built the bundle: "
                                                           f"{probe.reason}", "target": FIDELITY_TARGET}
        return fields
    runner = load_head(row, head, sampler, network, network.name if network else "head")
    fields["fidelity"] = head_fidelity(runner, head, sampler, compute_conditions(policy, held_out))
    return fields
