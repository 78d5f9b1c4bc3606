"""`tinyvla-edge inspect`: load a training output or bundle, verify it, report its facts, and
optionally run one observation through it (the parity check users run against their code)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import torch

from edge.errors import EdgeError
from edge.hub import resolve_path
from edge.policy.policy import ActionChunk, Policy
from edge.policy.preprocess import MAX_FRAME_SIDE

# What `--observation` and `--noise` files may be, checked before numpy allocates anything:
# numpy sizes its buffer from an array's header, which an attacker writes.
MAX_OBSERVATION_BYTES = 256 << 20  # 8 cameras of 4096×4096×3 would not fit; 2 of 1080p fit 20×
MAX_ARRAY_VALUES = MAX_FRAME_SIDE * MAX_FRAME_SIDE * 3
MAX_NOISE_BYTES = 1 << 20
MAX_INSTRUCTION_CHARS = 4096


def policy_facts(policy: Policy) -> dict:
    """What a user wants to know about a loaded policy."""
    cfg = policy.config
    v, lm, h = cfg.vision, cfg.language, cfg.head
    return {
        "variant": cfg.variant,
        "vision_tower": {
            "hidden_size": v.hidden_size, "layers": v.num_hidden_layers, "heads": v.num_attention_heads,
            "image_size": v.image_size, "patch_size": v.patch_size, "tokens_per_image": v.tokens_per_image,
            "select_layer": v.select_layer,
        },
        "language_model": {
            "hidden_size": lm.hidden_size, "layers": lm.num_hidden_layers, "heads": lm.num_attention_heads,
            "vocab_size": lm.vocab_size,
        },
        "projector": cfg.projector_type,
        "head": {
            "action_dim": h.action_dim, "state_dim": h.state_dim, "chunk_size": h.chunk_size,
            "down_dims": list(h.down_dims), "kernel_size": h.kernel_size, "step_embed_dim": h.step_embed_dim,
            "faithful_bf16_step_embedding": h.faithful_bf16_step_embedding,
        },
        "cameras": cfg.num_cameras,
        "action_layout": cfg.action_layout,
        "scheduler": policy.sampler().describe() | {"inference_steps": cfg.inference_steps},
        "parameters": policy.parameter_counts(),
        "normalization": policy.stats.summary(),
        "source": policy.source,
    }


def load_any(path: Path, base: Path | None = None) -> tuple[str, Policy]:
    """A native policy (policy.json) or a training output."""
    path = Path(path)
    if not path.exists():
        raise EdgeError(f"path not found: {path}")
    if (path / "policy.json").is_file():
        from edge.policy.native import load_policy

        return "policy", load_policy(path)
    from edge.policy.checkpoint import load_training_output

    return "training_output", load_training_output(path, base=base)


def inspect_bundle(path: Path, observation: Path | None, noise: Path | None, output: Path | None) -> dict:
    """Verify a bundle, report its manifest, optionally run one observation through its engines."""
    from edge.bundle import bundle_facts, load_predictor

    predictor = load_predictor(path)
    facts = {"kind": "bundle", "path": str(path), "verified": True, **bundle_facts(predictor.manifest)}
    if observation is None:
        return facts
    if output is None:
        raise EdgeError("--observation needs --output OUT.npz")
    images, state, instruction = read_observation(observation, len(predictor.camera_names))
    init = read_noise(noise, (1, predictor.chunk_size, predictor.action_dim)) if noise else None
    try:
        prediction = predictor.predict(images, state, instruction, noise=init)
    except ValueError as e:  # e.g. a state of the wrong length
        raise EdgeError(f"{observation}: {e}") from e
    chunk = predictor.decoder.decode(prediction.normalized)
    write_result(output, chunk)
    facts["run"] = {"observation": str(observation), "output": str(output), "steps": predictor.head_steps,
                    "noise": str(noise) if noise else "seed 0", "timings_ms": prediction.timings_ms,
                    "first_robot_action": [round(float(x), 5) for x in chunk.robot_actions[0]]}
    return facts


def _check_file_size(path: Path, limit: int) -> None:
    try:
        size = Path(path).stat().st_size
    except OSError as e:
        raise EdgeError(f"{path}: cannot read: {e.strerror}") from e
    if not Path(path).is_file() or size > limit:
        raise EdgeError(f"{path}: must be a regular file of at most {limit >> 20} MiB")


def _npy_header(fp, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, refusing object dtypes and oversized shapes."""
    try:
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fp)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise EdgeError(f"{where}: not a readable array: {str(e).splitlines()[0][:200]}") from e
    if dtype.hasobject:
        raise EdgeError(f"{where}: holds Python objects (dtype {dtype}); only plain numeric or text arrays are read")
    if math.prod(shape) > MAX_ARRAY_VALUES:
        raise EdgeError(f"{where}: shape {shape} is larger than {MAX_ARRAY_VALUES} values")
    return shape, dtype


def _check_npz_members(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                with archive.open(member) as fp:
                    _npy_header(fp, f"{path}: {member.filename}")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise EdgeError(f"{path}: not a readable .npz: {e}") from e


def read_observation(path: Path, num_cameras: int) -> tuple[list[np.ndarray], np.ndarray, str]:
    """OBS.npz: image_0.. (uint8 H×W×3 RGB, camera order), state (finite numbers), instruction
    (0-d str); sizes and dtypes are checked from the headers before anything is loaded."""
    _check_file_size(path, MAX_OBSERVATION_BYTES)
    _check_npz_members(path)
    try:
        data = np.load(path, allow_pickle=False)
        missing = [k for k in [*(f"image_{i}" for i in range(num_cameras)), "state", "instruction"] if k not in data]
        if missing:
            raise EdgeError(f"{path}: missing arrays {', '.join(missing)} (see docs/observation-format.md)")
        images = [data[f"image_{i}"] for i in range(num_cameras)]
        state, instruction = data["state"], data["instruction"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise EdgeError(f"{path}: not a readable .npz: {str(e).splitlines()[0][:200]}") from e
    for i, img in enumerate(images):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or not 2 <= min(img.shape[:2]) <= max(img.shape[:2]) <= MAX_FRAME_SIDE:
            raise EdgeError(f"{path}: image_{i} must be uint8 H×W×3 RGB with sides of 2 to {MAX_FRAME_SIDE} px, got {img.dtype} {img.shape}")
    if state.dtype.kind not in "iuf" or state.ndim != 1 or not np.isfinite(state).all():
        raise EdgeError(f"{path}: state must be a 1-D array of finite numbers, got {state.dtype} {state.shape}")
    if instruction.dtype.kind != "U" or instruction.size != 1 or len(str(instruction.reshape(()))) > MAX_INSTRUCTION_CHARS:
        raise EdgeError(f"{path}: instruction must be one string of at most {MAX_INSTRUCTION_CHARS} characters")
    return images, state.astype(np.float32), str(instruction.reshape(()))


def read_noise(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """Initial DDIM noise from .npy, shape (1, chunk, action_dim), finite floats."""
    _check_file_size(path, MAX_NOISE_BYTES)
    with open(path, "rb") as fp:
        found, dtype = _npy_header(fp, str(path))
    if tuple(found) != shape:
        raise EdgeError(f"{path}: noise must have shape {shape}, got {tuple(found)}")
    if dtype.kind != "f":
        raise EdgeError(f"{path}: noise must be floating point, got {dtype}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise EdgeError(f"{path}: not a readable .npy: {str(e).splitlines()[0][:200]}") from e
    if not np.isfinite(arr).all():
        raise EdgeError(f"{path}: noise contains NaN or infinite values")
    return torch.from_numpy(arr.astype(np.float32))


def write_result(path: Path, chunk: ActionChunk) -> None:
    """OUT.npz: normalized, actions, robot_actions."""
    np.savez(path, normalized=chunk.normalized, actions=chunk.actions, robot_actions=chunk.robot_actions)


def inspect_path(
    path: Path,
    base: Path | None = None,
    observation: Path | None = None,
    noise: Path | None = None,
    steps: int | None = None,
    output: Path | None = None,
) -> dict:
    """Load and verify `path` (a local path or a Hub id); with `observation`, run it and write `output`."""
    path = resolve_path(path)
    if (Path(path) / "manifest.json").is_file():
        return inspect_bundle(Path(path), observation, noise, output)
    kind, policy = load_any(path, base)
    facts = {"kind": kind, "path": str(path), "verified": True, **policy_facts(policy)}
    if observation is None:
        return facts
    if output is None:
        raise EdgeError("--observation needs --output OUT.npz")
    images, state, instruction = read_observation(observation, policy.config.num_cameras)
    h = policy.config.head
    init = read_noise(noise, (1, h.chunk_size, h.action_dim)) if noise else None
    run_steps = steps
    try:
        chunk = policy.predict(images, state, instruction, noise=init, steps=run_steps,
                               generator=torch.Generator().manual_seed(0))
    except ValueError as e:
        raise EdgeError(f"{observation}: {e}") from e
    write_result(output, chunk)
    facts["run"] = {
        "observation": str(observation), "output": str(output), "steps": run_steps or policy.config.inference_steps,
        "noise": str(noise) if noise else "seed 0",
        "first_robot_action": [round(float(x), 5) for x in chunk.robot_actions[0]],
    }
    return facts


def render_bundle(facts: dict) -> str:
    """Human-readable summary of a bundle."""
    f, hs = facts["fidelity"], facts["head_sampling"]
    lines = [f"bundle: {facts['path']}  (verified: {facts['files']} files, sha256)",
             f"  profile          {facts['profile']}  (built {facts['created_at']}, tinyvla-edge {facts['toolkit_version']})",
             f"  cameras          {', '.join(facts['camera_names'])}; prompt budget {facts['max_prompt_tokens']} tokens"]
    for name, c in facts["components"].items():
        lines.append(f"  {name:<16} {c['engine']} {c['precision']} ({c['file']})")
    kind = f"distilled ({hs['method']})" if hs["distilled"] else "teacher"
    lines.append(f"  head             {hs['steps']} DDIM steps {hs['timesteps']}, {kind}, teacher {hs['teacher_steps']} steps")
    if f:
        lines.append(f"  fidelity         condition cosine {f['condition_cosine_mean']:.5f}, action RMSE {f['action_rmse']:.5f} "
                     f"(backbone only {f['backbone_action_rmse']:.5f})")
    if "run" in facts:
        r = facts["run"]
        lines.append(f"  ran observation  {r['observation']} → {r['output']} ({r['steps']} steps)")
        lines.append(f"  first action     {r['first_robot_action']}")
    return "\n".join(lines)


def render_facts(facts: dict) -> str:
    """Human-readable summary of `inspect_path`'s result."""
    if facts["kind"] == "bundle":
        return render_bundle(facts)
    v, lm, h, p = facts["vision_tower"], facts["language_model"], facts["head"], facts["parameters"]
    sch, norm = facts["scheduler"], facts["normalization"]
    lines = [
        f"{facts['kind']}: {facts['path']}  (verified)",
        f"  variant          TinyVLA-{facts['variant']}" if facts["variant"] != "custom" else "  variant          custom dimensions",
        f"  vision tower     CLIP {v['layers']} layers × {v['hidden_size']}, {v['image_size']}px/{v['patch_size']}, "
        f"{v['tokens_per_image']} tokens per image (layer {v['select_layer']})",
        f"  language model   GPT-NeoX {lm['layers']} layers × {lm['hidden_size']}, {lm['heads']} heads",
        f"  head             UNet1D {h['down_dims']} k={h['kernel_size']}, action_dim {h['action_dim']}, "
        f"state_dim {h['state_dim']}, chunk {h['chunk_size']}",
        f"  cameras          {facts['cameras']}",
        f"  scheduler        DDIM {sch['inference_steps']} of {sch['train_steps']} steps, timesteps {sch['timesteps']}, "
        f"{sch['beta_schedule']}, {sch['prediction_type']}, clip ±{sch['clip_sample']}",
        "  parameters       " + ", ".join(f"{k} {val / 1e6:.2f}M" for k, val in p.items()),
        f"  action range     min {norm['action_min']}",
        f"                   max {norm['action_max']}",
        f"  state mean/std   {norm['qpos_mean']} / {norm['qpos_std']}",
    ]
    if "run" in facts:
        r = facts["run"]
        lines.append(f"  ran observation  {r['observation']} → {r['output']} ({r['steps']} steps, noise {r['noise']})")
        lines.append(f"  first action     {r['first_robot_action']}")
    return "\n".join(lines)
