"""TinyVLA-shaped models of any size, and generators of TinyVLA-layout directories.

Used by the tests, the demo and the benchmarks: a base VLM directory (as HF `Llava-Pythia-*`
repos hold it) and a training output directory as `train_tinyvla.py` + `process_ckpts.sh`
write it (config.json with action fields, dataset_stats.pkl, the final adapter and
non_lora_trainables.bin at the root, and checkpoint-N/ with the same plus
preprocessor_config.json). Nothing is downloaded: the tokenizer is a byte-level BPE built here.

Key names follow the reference layout through `edge.policy.keymap` (peft's wrapper prefix, peft
0.4's adapter keys without `.default`, LoRA targets chosen like `find_all_linear_names`); a test
holds every written key against tests/fixtures/tinyvla_reference_keys.txt, which was written by
hand from the reference sources.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from edge.policy.config import HeadConfig, LanguageConfig, PolicyConfig, VisionConfig
from edge.policy.keymap import adapter_file_key, is_lora_key, network_name, to_network_names, training_output_key
from edge.policy.network import TinyVLANetwork
from edge.policy.preprocess import ImageSettings
from edge.policy.prompt import END_OF_TEXT

# find_all_linear_names skips linear layers whose names contain these (lora_module "vit llm").
_NOT_LORA_TARGETS = ("mm_projector", "embed_out", "proj_to_action", "vision_resampler")


def tiny_config(
    num_cameras: int = 2,
    action_dim: int = 10,
    state_dim: int = 7,
    chunk_size: int = 16,
    hidden: int = 32,
    image_size: int = 28,
    down_dims: tuple[int, ...] = (16, 32, 64),
) -> PolicyConfig:
    """A TinyVLA-shaped config small enough for unit tests (well under a second per inference)."""
    return PolicyConfig(
        vision=VisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
            image_size=image_size, patch_size=14, projection_dim=32,
        ),
        language=LanguageConfig(
            hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4, intermediate_size=4 * hidden,
            vocab_size=260, max_position_embeddings=512,
        ),
        head=HeadConfig(
            action_dim=action_dim, state_dim=state_dim, chunk_size=chunk_size,
            down_dims=down_dims, kernel_size=5, step_embed_dim=16, n_groups=8,
        ),
        num_cameras=num_cameras,
        action_layout="xyz_rot6d_gripper" if action_dim == 10 else "raw",
    )


# Pythia LLM of each TinyVLA variant (tinyvla-format.md §1.1): hidden, layers, heads.
PUBLISHED_LLM = {"S": (512, 6, 8), "B": (1024, 24, 16), "H": (2048, 16, 8)}


def published_config(variant: str = "S", num_cameras: int = 1, image_size: int = 336,
                     vision_layers: int = 24, llm_layers: int | None = None) -> PolicyConfig:
    """A TinyVLA-S/-B/-H config: CLIP ViT-L/14-336 + Pythia-70M/410M/1B + the reference head.
    Layer counts may be reduced (the widths stay the published ones)."""
    hidden, layers, heads = PUBLISHED_LLM[variant]
    return PolicyConfig(
        vision=VisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=vision_layers, num_attention_heads=16,
            image_size=image_size, patch_size=14,
        ),
        language=LanguageConfig(
            hidden_size=hidden, num_hidden_layers=llm_layers or layers, num_attention_heads=heads,
            intermediate_size=4 * hidden, vocab_size=50304,
        ),
        head=HeadConfig(),
        num_cameras=num_cameras,
    )


def s_dimension_config(num_cameras: int = 1, image_size: int = 336) -> PolicyConfig:
    """TinyVLA-S dimensions (for benchmarks)."""
    return published_config("S", num_cameras, image_size)


def write_tokenizer(path: Path) -> Path:
    """A byte-level BPE tokenizer (every byte a token, Pythia's two special tokens first)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    vocab = {END_OF_TEXT: 0, "<|padding|>": 1}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(END_OF_TEXT, special=True), AddedToken("<|padding|>", special=True)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def _llava_pythia_config(cfg: PolicyConfig, base_path: str) -> dict:
    """config.json as LlavaPythiaConfig writes it (transformers 4.37 field names)."""
    lm, v = cfg.language, cfg.vision
    # LlavaPythiaVisionConfig's fields (configuration_llava_pythia.py), not the installed
    # transformers' CLIPVisionConfig.to_dict(), which transformers 5 changed.
    clip = {
        "model_type": "llava_pythia_clip_vision_model",
        "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size, "projection_dim": v.projection_dim,
        "num_hidden_layers": v.num_hidden_layers, "num_attention_heads": v.num_attention_heads,
        "num_channels": v.num_channels, "image_size": v.image_size, "patch_size": v.patch_size,
        "hidden_act": v.hidden_act, "layer_norm_eps": v.layer_norm_eps, "attention_dropout": 0.0,
        "initializer_range": 0.02, "initializer_factor": 1.0,
        "mm_vision_select_feature": v.select_feature, "mm_vision_select_layer": v.select_layer,
        "vision_model_name_or_path": "openai/clip-vit-large-patch14-336", "concat": "None",
    }
    return {
        "_name_or_path": base_path,
        "architectures": ["LlavaPythiaForCausalLM"],
        "model_type": "llava_pythia",
        "hidden_size": lm.hidden_size,
        "num_hidden_layers": lm.num_hidden_layers,
        "num_attention_heads": lm.num_attention_heads,
        "intermediate_size": lm.intermediate_size,
        "vocab_size": lm.vocab_size,
        "rotary_pct": lm.rotary_pct,
        "rotary_emb_base": lm.rotary_emb_base,
        "max_position_embeddings": lm.max_position_embeddings,
        "layer_norm_eps": lm.layer_norm_eps,
        "use_parallel_residual": lm.use_parallel_residual,
        "hidden_act": lm.hidden_act,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.37.1",
        "use_cache": True,
        "vision_config": {
            "vision_tower": clip,
            "mm_projector": {"mm_projector_type": cfg.projector_type, "mm_hidden_size": v.hidden_size, "hidden_size": lm.hidden_size},
        },
    }


def write_base_vlm(directory: Path, cfg: PolicyConfig, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """A base VLM directory like HF `lesjie/Llava-Pythia-*`: config, weights (with the LM head
    `embed_out.weight`), tokenizer, preprocessor config."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = TinyVLANetwork(cfg)
    # The network's backbone parameter names are the base VLM's keys (edge.policy.keymap).
    state = {name: p.detach().to(dtype).contiguous() for name, p in net.named_parameters() if name.startswith("gpt_neox.")}
    state["embed_out.weight"] = (torch.randn(cfg.language.vocab_size, cfg.language.hidden_size) * 0.02).to(dtype)
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(_llava_pythia_config(cfg, str(directory)), indent=2))
    (directory / "preprocessor_config.json").write_text(
        json.dumps(ImageSettings(size=cfg.vision.image_size).processor_config(), indent=2)
    )
    write_tokenizer(directory / "tokenizer.json")
    return directory


def tiny_stats(cfg: PolicyConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible dataset_stats.pkl contents (xyz in metres, rot6d in [−1, 1], gripper 0–1)."""
    rng = np.random.default_rng(seed)
    a, s = cfg.head.action_dim, cfg.head.state_dim
    lo = -np.abs(rng.normal(0.5, 0.1, a)) - 1e-4
    hi = np.abs(rng.normal(0.5, 0.1, a)) + 1e-4
    return {
        "action_mean": ((lo + hi) / 2).astype(np.float32),
        "action_std": ((hi - lo) / 4).astype(np.float32),
        "action_min": lo.astype(np.float32),
        "action_max": hi.astype(np.float32),
        "qpos_mean": rng.normal(0, 0.2, s).astype(np.float32),
        "qpos_std": np.clip(np.abs(rng.normal(0.3, 0.1, s)), 1e-2, None).astype(np.float32),
        "example_qpos": rng.normal(0, 0.2, (1, s)).astype(np.float32),
    }


def _peft_04_adapter_config(base: Path, r: int, alpha: int, targets: list[str]) -> dict:
    """adapter_config.json as peft 0.4.0 writes it."""
    return {
        "auto_mapping": None,
        "base_model_name_or_path": str(base),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": alpha,
        "lora_dropout": 0.05,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "revision": None,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
    }


def lora_targets(network: torch.nn.Module) -> list[str]:
    """Full dotted names of the linear layers TinyVLA's `find_all_linear_names` picks."""
    return sorted(
        name for name, module in network.named_modules()
        if isinstance(module, torch.nn.Linear) and not any(word in name for word in _NOT_LORA_TARGETS)
    )


def trained_network(cfg: PolicyConfig, base: Path, seed: int = 1, lora_r: int = 4, lora_alpha: int = 16):
    """A PEFT-wrapped network as training leaves it: base weights, fine-tuned projector and head,
    non-zero LoRA. Returns the PeftModel (unmerged)."""
    from peft import LoraConfig, PeftModel
    from safetensors.torch import load_file

    torch.manual_seed(seed)
    net = TinyVLANetwork(cfg)
    base_file = base / "model.safetensors"
    base_state = to_network_names(load_file(str(base_file)), str(base_file))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("gpt_neox.mm_projector."):
                p.copy_(base_state[name] + 0.05 * torch.randn_like(p))  # the projector is fine-tuned in full
            elif name.startswith("gpt_neox."):
                p.copy_(base_state[name])
    lora = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.05, target_modules=lora_targets(net))
    peft_model = PeftModel(net, lora)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # trained LoRA: the merge must change the weights
    return peft_model.eval()


def _non_lora_state(peft_model) -> dict[str, torch.Tensor]:
    """non_lora_trainables.bin: every non-LoRA parameter, under its reference key, bf16 as trained."""
    return {
        training_output_key(network_name(name)): p.detach().to(torch.bfloat16).clone()
        for name, p in peft_model.named_parameters() if not is_lora_key(name)
    }


def _adapter_state(peft_model) -> dict[str, torch.Tensor]:
    """adapter_model.*: the LoRA tensors under peft 0.4's keys, bf16 as trained."""
    return {
        adapter_file_key(name): p.detach().to(torch.bfloat16).contiguous()
        for name, p in peft_model.named_parameters() if is_lora_key(name)
    }


def write_training_output(
    root: Path,
    base: Path,
    cfg: PolicyConfig,
    seed: int = 1,
    step: int | None = 1000,
    adapter_format: Literal["safetensors", "bin"] = "safetensors",
    non_lora_form: Literal["file", "directory"] = "file",
    lora_r: int = 4,
) -> Path:
    """Write a TinyVLA-layout training output at `root` (name it like `llava_pythia_lora_*`);
    `step` None writes the root's final weights only, no checkpoint-N/."""
    root = Path(root)
    peft_model = trained_network(cfg, Path(base), seed, lora_r=lora_r, lora_alpha=4 * lora_r)
    root.mkdir(parents=True, exist_ok=True)
    raw = _llava_pythia_config(cfg, str(base))
    raw.update(
        action_head_type="droid_diffusion", action_dim=cfg.head.action_dim, state_dim=cfg.head.state_dim,
        chunk_size=cfg.head.chunk_size, concat="token_cat", freeze_vision_tower=True, tune_mm_mlp_adapter=True,
        image_aspect_ratio="pad", tokenizer_padding_side="right", tokenizer_model_max_length=2048,
        mm_use_im_start_end=False, mm_use_im_patch_token=False, non_lora_lr=2e-5, pad_token_id=1,
    )
    (root / "config.json").write_text(json.dumps(raw, indent=2))
    with open(root / "dataset_stats.pkl", "wb") as f:
        pickle.dump(tiny_stats(cfg, seed), f)
    _write_weights(root, peft_model, base, adapter_format, "file", checkpoint=False)
    if step is None:
        return root
    checkpoint = root / f"checkpoint-{step}"
    _write_weights(checkpoint, peft_model, base, adapter_format, non_lora_form, checkpoint=True)
    (checkpoint / "preprocessor_config.json").write_text(
        json.dumps(ImageSettings(size=cfg.vision.image_size).processor_config(), indent=2)
    )
    return root


def _write_weights(d: Path, peft_model, base: Path, adapter_format: str, non_lora_form: str, checkpoint: bool) -> None:
    d.mkdir(parents=True, exist_ok=True)
    lora = peft_model.peft_config["default"]
    # Full dotted names, as find_all_linear_names records them (peft may shorten its own copy).
    from peft.tuners.lora import LoraLayer

    targets = sorted(network_name(n) for n, m in peft_model.named_modules() if isinstance(m, LoraLayer))
    (d / "adapter_config.json").write_text(json.dumps(_peft_04_adapter_config(base, lora.r, lora.lora_alpha, targets), indent=2))
    adapter = _adapter_state(peft_model)
    if adapter_format == "safetensors":
        from safetensors.torch import save_file

        save_file(adapter, str(d / "adapter_model.safetensors"))
    else:
        torch.save(adapter, d / "adapter_model.bin")
    non_lora = _non_lora_state(peft_model)
    if checkpoint:  # process_ckpts.sh rebuilds checkpoint-N's copy from the ZeRO shards in fp32
        non_lora = {k: v.float() for k, v in non_lora.items()}
    if non_lora_form == "directory":
        (d / "non_lora_trainables.bin").mkdir(exist_ok=True)
        torch.save(non_lora, d / "non_lora_trainables.bin" / "pytorch_model.bin")
    else:
        torch.save(non_lora, d / "non_lora_trainables.bin")


def write_observation(path: Path, cfg: PolicyConfig, height: int = 48, width: int = 64, seed: int = 0, instruction: str = "pick up the red cube") -> Path:
    """An OBS.npz per the documented contract (image_0.., state, instruction)."""
    rng = np.random.default_rng(seed)
    arrays = {f"image_{i}": rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for i in range(cfg.num_cameras)}
    arrays["state"] = rng.normal(0, 0.2, cfg.head.state_dim).astype(np.float32)
    arrays["instruction"] = np.array(instruction)
    np.savez(path, **arrays)
    return Path(path)
