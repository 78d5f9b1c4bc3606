"""An independent re-implementation of the reference inference path, used as the oracle.

It follows the reference loader and eval script step by step instead of tinyvla-edge's
runtime path: base weights loaded with `strict=False`, non-LoRA weights with the reference
prefix stripping, the PEFT adapter applied but *not* merged, images through transformers'
PIL CLIPImageProcessor, prompt tokens through `transformers.PreTrainedTokenizerFast` and
LLaVA's `tokenizer_image_token`, and diffusers' DDIMScheduler calling the head's
reference-signature `forward` (condition recomputed at every step).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler
from peft import LoraConfig, PeftModel
from peft.utils import set_peft_model_state_dict
from safetensors.torch import load_file

from edge.policy.config import policy_config_from_tinyvla
from edge.policy.head import infer_head_config
from edge.policy.network import TinyVLANetwork
from edge.policy.preprocess import ImageSettings, center_crop_resize, expand_to_square
from edge.policy.prompt import build_prompt


def tokenizer_image_token(prompt: str, tokenizer) -> list[int]:
    chunks = [tokenizer(c).input_ids for c in prompt.split("<image>")]
    ids: list[int] = []
    sep = [-200]
    for i, c in enumerate(chunks):
        if i:
            ids.extend(sep)
        ids.extend(c)
    return ids


def reference_chunk(root: Path, base: Path, obs: Path, noise: torch.Tensor, steps: int, apply_lora: bool = True) -> np.ndarray:
    from transformers import PreTrainedTokenizerFast
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    raw = json.loads((root / "config.json").read_text())
    state = torch.load(root / "non_lora_trainables.bin", weights_only=True)
    state = {k.removeprefix("base_model."): v.float() for k, v in state.items()}
    if any(k.startswith("model.gpt_neox.") for k in state):
        state = {k.removeprefix("model."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if "lora_" not in k}
    cfg = policy_config_from_tinyvla(raw)
    cfg = cfg.with_head(**infer_head_config(state, cfg.head, "embed_out.").model_dump())

    net = TinyVLANetwork(cfg)
    net.load_state_dict({k: v for k, v in load_file(str(base / "model.safetensors")).items() if k != "embed_out.weight"}, strict=False)
    result = net.load_state_dict(state, strict=False)
    # The reference layout's names load as they are: no key map on this path.
    assert not result.unexpected_keys and not [k for k in result.missing_keys if k.startswith("embed_out")]
    model = net
    if apply_lora:
        acfg = json.loads((root / "adapter_config.json").read_text())
        model = PeftModel(net, LoraConfig(r=acfg["r"], lora_alpha=acfg["lora_alpha"], target_modules=acfg["target_modules"]))
        set_peft_model_state_dict(model, load_file(str(root / "adapter_model.safetensors")))
        model.eval()
        net = model.base_model.model

    settings = ImageSettings.from_processor_config(root / "checkpoint-1000" / "preprocessor_config.json")
    processor = CLIPImageProcessorPil(**{k: v for k, v in settings.processor_config().items() if k != "image_processor_type"})
    data = np.load(obs)
    pixels = []
    for i in range(cfg.num_cameras):
        x = torch.from_numpy(data[f"image_{i}"] / 255.0).float().permute(2, 0, 1)
        square = expand_to_square(center_crop_resize(x), settings.image_mean)
        pixels.append(torch.from_numpy(processor.preprocess(square, do_rescale=False, do_normalize=True,
                                                            do_center_crop=False, return_tensors="np")["pixel_values"][0]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(base / "tokenizer.json"))
    ids = torch.tensor([tokenizer_image_token(build_prompt(str(data["instruction"])), tokenizer)])

    stats = pickle.loads((root / "dataset_stats.pkl").read_bytes())
    qpos = (data["state"] - stats["qpos_mean"]) / stats["qpos_std"]
    states = torch.from_numpy(qpos.astype(np.float32))[None]

    scheduler = DDIMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                              set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon")
    scheduler.set_timesteps(steps)
    with torch.no_grad():
        hidden = net.backbone(ids, torch.stack(pixels)[None])
        x = noise.clone()
        for t in scheduler.timesteps:
            x = scheduler.step(net.embed_out(x, t, global_cond=hidden, states=states), t, x).prev_sample
    return x[0].numpy()
