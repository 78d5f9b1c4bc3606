"""Loading real TinyVLA training outputs (tinyvla-format.md §4) into a verified `Policy`.

Layout: an OUTPUT root with `config.json` and `dataset_stats.pkl`, the final adapter and
`non_lora_trainables.bin`, and `checkpoint-N/` directories with the same weights plus
`preprocessor_config.json`. The base VLM (CLIP + Pythia weights, tokenizer) comes from `--base`
or the path recorded in the config. Key names go through `edge.policy.keymap` (the reference's
names; transformers ≥ 5 and newer peft names renamed). Unlike the reference loader, which silently
leaves the head random on a key-prefix mismatch, every head and projector parameter must load, and
any missing, unexpected or mis-shaped key is an error naming the keys and, where the key set looks
like a known other layout, the likely cause.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from edge.errors import CheckpointError
from edge.hub import resolve_path
from edge.policy.actions import NormStats
from edge.policy.config import PolicyConfig, policy_config_from_tinyvla
from edge.policy.head import infer_head_config
from edge.policy.keymap import (
    adapter_file_key, adapter_state_for_network, is_lora_key, mismatch_message, network_name, target_modules, to_network_names,
)
from edge.policy.network import TinyVLANetwork
from edge.policy.policy import Policy
from edge.policy.preprocess import ImageSettings
from edge.policy.prompt import PromptTokenizer
from edge.policy.safe_io import load_stats_pickle, load_tensors

NON_LORA = "non_lora_trainables.bin"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
STATS = "dataset_stats.pkl"
PROCESSOR = "preprocessor_config.json"
BASE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# Buffers that old transformers versions saved and current ones recompute.
_IGNORABLE = re.compile(r"(\.attention\.(bias|masked_bias)|rotary_emb\.inv_freq|position_ids)$")
# Trained in full by TinyVLA: these must come from the training output, never from the base.
_TRAINED_PREFIXES = ("embed_out.", "gpt_neox.mm_projector.")


@dataclass(frozen=True)
class TrainingOutput:
    """Where each file of a TinyVLA training output is."""

    root: Path
    weights_dir: Path  # the root or one checkpoint-N
    config: Path
    stats: Path
    non_lora: Path
    adapter_config: Path
    adapter_weights: Path
    processor: Path | None


def _checkpoint_number(p: Path) -> int:
    m = re.fullmatch(r"checkpoint-(\d+)", p.name)
    return int(m.group(1)) if m else -1


def _non_lora_file(d: Path) -> Path | None:
    p = d / NON_LORA
    if p.is_file():
        return p
    if p.is_dir() and (p / "pytorch_model.bin").is_file():  # newer DeepSpeed writes a directory
        return p / "pytorch_model.bin"
    return None


def _has_weights(d: Path) -> bool:
    return _non_lora_file(d) is not None or (d / ADAPTER_CONFIG).is_file()


def locate(path: Path) -> TrainingOutput:
    """Find the files of a training output given its root or one `checkpoint-N/` inside it."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"not a directory: {path}")
    if _checkpoint_number(path) >= 0 and not (path / "config.json").is_file():
        root, weights_dir = path.parent, path
    else:
        root = path
        checkpoints = sorted((p for p in root.glob("checkpoint-*") if p.is_dir()), key=_checkpoint_number)
        weights_dir = root if _has_weights(root) or not checkpoints else checkpoints[-1]
    config = root / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{root}: not a TinyVLA training output (no config.json)")
    missing = []
    stats = root / STATS
    if not stats.is_file():
        missing.append(STATS)
    non_lora = _non_lora_file(weights_dir)
    if non_lora is None:
        missing.append(NON_LORA)
    adapter_config = weights_dir / ADAPTER_CONFIG
    adapter_weights = next((weights_dir / n for n in ADAPTER_WEIGHTS if (weights_dir / n).is_file()), None)
    if not adapter_config.is_file() or adapter_weights is None:
        missing.append(f"{ADAPTER_CONFIG} + adapter_model.(safetensors|bin)")
    if missing:
        raise CheckpointError(f"{weights_dir}: missing {', '.join(missing)}")
    processor = next((d / PROCESSOR for d in (weights_dir, root) if (d / PROCESSOR).is_file()), None)
    return TrainingOutput(root, weights_dir, config, stats, non_lora, adapter_config, adapter_weights, processor)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _base_weight_file(base: Path) -> Path:
    for name in BASE_WEIGHTS:
        if (base / name).is_file():
            return base / name
    raise CheckpointError(f"{base}: no model.safetensors or pytorch_model.bin in the base VLM directory")


def resolve_base(cfg: dict, adapter_cfg: dict, base: Path | None, config_path: Path) -> Path:
    """The base VLM directory: --base (a local directory or a Hub id), else the local path the
    training run recorded."""
    if base is not None:
        base = resolve_path(base)
        if not base.is_dir():
            raise CheckpointError(f"base VLM directory not found: {base}")
        return base
    for recorded in (cfg.get("model_base"), adapter_cfg.get("base_model_name_or_path"), cfg.get("_name_or_path")):
        if recorded and Path(recorded).is_dir():
            return Path(recorded)
    recorded = cfg.get("model_base") or adapter_cfg.get("base_model_name_or_path") or "(none)"
    raise CheckpointError(
        f"{config_path}: base VLM '{recorded}' is not a local directory; pass --base DIR or --base ORG/REPO (a Hub id: docs/hub.md)"
    )


def check_base_matches(base_dir: Path, cfg: PolicyConfig) -> None:
    """The base VLM must have the training output's dimensions (the run was built on it)."""
    base_cfg_path = base_dir / "config.json"
    if not base_cfg_path.is_file():
        raise CheckpointError(f"{base_dir}: not a base VLM directory (no config.json)")
    raw = read_json(base_cfg_path)
    tower = raw.get("vision_config", {}).get("vision_tower", {})
    pairs = [
        ("hidden_size", raw.get("hidden_size"), cfg.language.hidden_size),
        ("num_hidden_layers", raw.get("num_hidden_layers"), cfg.language.num_hidden_layers),
        ("vocab_size", raw.get("vocab_size"), cfg.language.vocab_size),
        ("vision hidden_size", tower.get("hidden_size"), cfg.vision.hidden_size),
        ("vision num_hidden_layers", tower.get("num_hidden_layers"), cfg.vision.num_hidden_layers),
        ("vision image_size", tower.get("image_size"), cfg.vision.image_size),
    ]
    wrong = [f"{name} {got} vs {want}" for name, got, want in pairs if got is not None and got != want]
    if wrong:
        raise CheckpointError(f"base VLM {base_dir} does not match the training output: {', '.join(wrong)}")


def _base_tensors(base_file: Path, wanted: set[str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The base VLM's tensors for the `wanted` network names (as stored), and its keys that name no
    network parameter. A safetensors base is read key by key, so parameters the training output
    already holds (all of them, for a root non_lora_trainables.bin) are never read: for TinyVLA-H
    that saves the base's whole size in peak memory."""
    if base_file.suffix != ".safetensors":
        state = to_network_names(load_tensors(base_file, float32=False), str(base_file))
        return {k: v for k, v in state.items() if k in wanted}, list(state)
    from safetensors import safe_open

    try:
        with safe_open(str(base_file), framework="pt") as f:
            names = {network_name(k): k for k in f.keys()}
            used = {n: f.get_tensor(k) for n, k in names.items() if n in wanted}
    except Exception as e:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{base_file}: cannot read tensors (truncated or corrupted?): {str(e)[:200]}") from e
    return used, list(names)


def _check_and_load(network: TinyVLANetwork, base_file: Path, trained: dict, where: str) -> None:
    """Load base then training-output tensors, refusing missing, unexpected or mis-shaped keys."""
    expected = network.state_dict()
    unexpected = sorted(k for k in trained if k not in expected and not _IGNORABLE.search(k))
    not_trained = sorted(k for k in expected if k.startswith(_TRAINED_PREFIXES) and k not in trained)
    if unexpected or not_trained:
        raise CheckpointError(mismatch_message(where, not_trained, unexpected))
    # The base fills what the training output lacks (e.g. frozen weights left out by zero_to_fp32).
    base_used, base_keys = _base_tensors(base_file, {k for k in expected if k not in trained})
    for k, v in base_used.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"base VLM tensor '{k}' has shape {tuple(v.shape)}, the training output implies {tuple(expected[k].shape)}")
    merged = {**base_used, **{k: v for k, v in trained.items() if k in expected}}
    missing = sorted(k for k in expected if k not in merged)
    if missing:
        # The base's `embed_out.weight` is Pythia's LM head, replaced by the action head (§2.1).
        base_unexpected = [k for k in base_keys if k not in expected and k != "embed_out.weight" and not _IGNORABLE.search(k)]
        raise CheckpointError(mismatch_message(
            f"{base_file} + {where}", missing, base_unexpected, "keys in neither the base VLM nor the training output"))
    for k, v in merged.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(
                f"{where}: tensor '{k}' has shape {tuple(v.shape)}, the config implies {tuple(expected[k].shape)}"
            )
    network.load_state_dict(merged, strict=True)


def lora_config(adapter_cfg: dict, where: Path):
    """A peft LoraConfig from an adapter_config.json written by any peft version (0.4 onwards)."""
    from edge.errors import require

    peft = require("peft", "quantize")
    import dataclasses

    known = {f.name for f in dataclasses.fields(peft.LoraConfig)}
    kwargs = {k: v for k, v in adapter_cfg.items() if k in known}
    kwargs["target_modules"] = target_modules(adapter_cfg.get("target_modules"))
    kwargs["task_type"] = None  # our network is a plain module, not a HF causal LM
    kwargs["inference_mode"] = True
    if adapter_cfg.get("peft_type", "LORA") != "LORA":
        raise CheckpointError(f"{where}: peft_type {adapter_cfg.get('peft_type')} is not supported (only LORA)")
    try:
        return peft.LoraConfig(**kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: invalid adapter config: {e}") from e


def merge_adapter(network: TinyVLANetwork, adapter_cfg: dict, adapter_file_state: dict, where: Path) -> TinyVLANetwork:
    """Apply the LoRA adapter and merge it into the weights (`merge_and_unload`)."""
    from peft import PeftModel
    from peft.utils import set_peft_model_state_dict

    try:
        peft_model = PeftModel(network, lora_config(adapter_cfg, where))
    except ValueError as e:
        raise CheckpointError(f"{where}: adapter does not match the base model: {str(e).splitlines()[0]}") from e
    adapter_state = adapter_state_for_network(adapter_file_state, str(where))
    lora_keys = {adapter_file_key(k) for k in peft_model.state_dict() if is_lora_key(k)}
    loaded = set(adapter_state)
    unmatched, absent = sorted(loaded - lora_keys), sorted(lora_keys - loaded)
    if unmatched or absent:
        raise CheckpointError(mismatch_message(
            str(where), absent, unmatched, "adapter keys do not match the modules adapter_config.json targets"))
    try:
        set_peft_model_state_dict(peft_model, adapter_state)
    except RuntimeError as e:
        raise CheckpointError(f"{where}: adapter does not match the base model: {str(e).splitlines()[0][:300]}") from e
    return peft_model.merge_and_unload()


def fingerprint(files: list[Path]) -> str:
    """sha256 over the given files' names and bytes (identifies the source of a bundle)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_training_output(path: Path, base: Path | None = None, faithful_bf16_step_embedding: bool = True) -> Policy:
    """Load a TinyVLA training output (root or checkpoint-N) into a verified, merged Policy."""
    out = locate(path)
    raw_cfg = read_json(out.config)
    cfg: PolicyConfig = policy_config_from_tinyvla(raw_cfg, str(out.config))
    adapter_cfg = read_json(out.adapter_config)
    base_dir = resolve_base(raw_cfg, adapter_cfg, base, out.config)
    stats = NormStats(**{k: v for k, v in load_stats_pickle(out.stats).items() if k in NormStats.model_fields})
    # As stored (bf16 at the root): load_state_dict converts while copying, so TinyVLA-H never
    # holds a second float32 copy of its 1.3 B parameters.
    trained = to_network_names(load_tensors(out.non_lora, float32=False), str(out.non_lora))
    head_cfg = infer_head_config(trained, cfg.head, prefix="embed_out.")
    cfg = cfg.with_head(**head_cfg.model_dump(exclude={"faithful_bf16_step_embedding"}),
                        faithful_bf16_step_embedding=faithful_bf16_step_embedding)
    _check_dims(cfg, stats, out.stats)
    check_base_matches(base_dir, cfg)
    network = TinyVLANetwork(cfg)
    _check_and_load(network, _base_weight_file(base_dir), trained, str(out.non_lora))
    network = merge_adapter(network, adapter_cfg, load_tensors(out.adapter_weights), out.adapter_weights)
    processor = out.processor or (base_dir / PROCESSOR if (base_dir / PROCESSOR).is_file() else None)
    settings = ImageSettings.from_processor_config(processor) if processor else ImageSettings(size=cfg.vision.image_size)
    if settings.size != cfg.vision.image_size:
        raise CheckpointError(f"{processor}: image size {settings.size} does not match the vision tower's {cfg.vision.image_size}")
    source = {
        "kind": "training_output",
        "path": str(out.weights_dir),
        "base": str(base_dir),
        "fingerprint": fingerprint([out.non_lora, out.adapter_weights, out.stats, out.config]),
    }
    return Policy(network.eval(), PromptTokenizer(base_dir / "tokenizer.json"), settings, stats, source)


def _check_dims(cfg: PolicyConfig, stats: NormStats, where: Path) -> None:
    if len(stats.action_min) != cfg.head.action_dim:
        raise CheckpointError(f"{where}: action stats have {len(stats.action_min)} values, action_dim is {cfg.head.action_dim}")
    if len(stats.qpos_mean) != cfg.head.state_dim:
        raise CheckpointError(f"{where}: state stats have {len(stats.qpos_mean)} values, state_dim is {cfg.head.state_dim}")
