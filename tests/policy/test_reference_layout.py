"""The reference key layout: generated files hold exactly the hand-written table's keys, every
table key maps onto exactly one network parameter, other library versions' names load, and
layouts no reference code writes are refused with their likely cause."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from edge.errors import CheckpointError
from edge.policy.checkpoint import load_training_output
from edge.policy.keymap import adapter_state_for_network, network_name, target_modules, to_network_names
from edge.policy.native import load_policy, save_policy
from edge.policy.network import TinyVLANetwork
from edge.policy.tiny import trained_network
from tests.policy.reference_keys import reference_keys

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
LORA_R = 4  # write_training_output's default rank


def _check_file(state: dict, table: dict, dtype_override: str | None = None):
    assert set(state) == set(table), (sorted(set(state) - set(table))[:5], sorted(set(table) - set(state))[:5])
    for key, tensor in state.items():
        dtype, shape = table[key]
        dtype = dtype_override or dtype
        assert tuple(tensor.shape) == shape, key
        if dtype == "float":
            assert tensor.dtype.is_floating_point, key
        else:
            assert tensor.dtype == DTYPES[dtype], key


def test_generated_training_output_has_exactly_the_reference_keys(tiny_output, tiny_cfg):
    non_lora = reference_keys("non_lora", tiny_cfg, LORA_R)
    _check_file(torch.load(tiny_output / "non_lora_trainables.bin", weights_only=True), non_lora)
    checkpoint = tiny_output / "checkpoint-1000"
    _check_file(torch.load(checkpoint / "non_lora_trainables.bin", weights_only=True), non_lora, "fp32")
    for d in (tiny_output, checkpoint):
        _check_file(load_file(str(d / "adapter_model.safetensors")), reference_keys("adapter", tiny_cfg, LORA_R))
        targets = json.loads((d / "adapter_config.json").read_text())["target_modules"]
        assert sorted(targets) == sorted(reference_keys("target_modules", tiny_cfg))


def test_generated_base_vlm_has_exactly_the_reference_keys(tiny_base, tiny_cfg):
    _check_file(load_file(str(tiny_base / "model.safetensors")), reference_keys("base", tiny_cfg))


def _assert_one_to_one(keys, expected_names, rename):
    mapped = {}
    for key in keys:
        name = rename(key)
        assert name not in mapped, f"{key} and {mapped[name]} both map onto {name}"
        mapped[name] = key
    assert set(mapped) == set(expected_names), (sorted(set(mapped) - set(expected_names))[:5],
                                                sorted(set(expected_names) - set(mapped))[:5])


def test_every_reference_key_maps_onto_exactly_one_network_parameter(tiny_cfg):
    network = TinyVLANetwork(tiny_cfg)
    params = dict(network.named_parameters())
    _assert_one_to_one(reference_keys("non_lora", tiny_cfg), params, network_name)
    base = [k for k in reference_keys("base", tiny_cfg) if k != "embed_out.weight"]  # Pythia's LM head, replaced
    _assert_one_to_one(base, [n for n in params if n.startswith("gpt_neox.")], network_name)


def test_every_reference_adapter_key_maps_onto_one_lora_tensor(tiny_cfg, tiny_base):
    peft_model = trained_network(tiny_cfg, tiny_base, lora_r=LORA_R)
    lora = {re.sub(r"\.default(?=\.)", "", n) for n, _ in peft_model.named_parameters() if "lora_" in n}
    table = reference_keys("adapter", tiny_cfg, LORA_R)
    renamed = adapter_state_for_network({k: torch.zeros(1) for k in table}, "table")
    assert len(renamed) == len(table) and set(renamed) == lora
    modules = {n for n, _ in peft_model.base_model.model.named_modules()}
    assert set(target_modules(list(reference_keys("target_modules", tiny_cfg)))) <= modules


# --- other layouts ---------------------------------------------------------------------------


def _to_transformers_5(key: str) -> str:
    return key.replace("vision_tower.vision_model.", "vision_tower.")


def _rewrite(path, rename):
    torch.save({rename(k): v for k, v in torch.load(path, weights_only=True).items()}, path)


def _rewrite_safetensors(path, rename):
    save_file({rename(k): v for k, v in load_file(str(path)).items()}, str(path))


def _run(policy, obs, noise):
    data = np.load(obs)
    images = [data[f"image_{i}"] for i in range(policy.config.num_cameras)]
    return policy.predict(images, data["state"], str(data["instruction"]), noise=noise).normalized


@pytest.fixture()
def copy(tmp_path, tiny_output, tiny_base):
    root = shutil.copytree(tiny_output, tmp_path / tiny_output.name)
    base = shutil.copytree(tiny_base, tmp_path / "base")
    return root, base


def test_transformers_5_clip_names_load_everywhere(copy, tiny_policy, tiny_observation, fixed_noise):
    """Non-LoRA file, base model.safetensors, adapter keys and target_modules all without the
    `vision_model.` segment: the same policy loads."""
    root, base = copy
    for d in (root, root / "checkpoint-1000"):
        _rewrite(d / "non_lora_trainables.bin", _to_transformers_5)
        _rewrite_safetensors(d / "adapter_model.safetensors", _to_transformers_5)
        cfg = json.loads((d / "adapter_config.json").read_text())
        cfg["target_modules"] = [_to_transformers_5(t) for t in cfg["target_modules"]]
        (d / "adapter_config.json").write_text(json.dumps(cfg))
    _rewrite_safetensors(base / "model.safetensors", _to_transformers_5)
    assert any(".vision_tower.embeddings." in k for k in load_file(str(base / "model.safetensors")))
    for path in (root, root / "checkpoint-1000"):
        policy = load_training_output(path, base=base)
        assert np.array_equal(_run(policy, tiny_observation, fixed_noise), _run(tiny_policy, tiny_observation, fixed_noise))


def test_newer_peft_names_load(copy, tiny_policy, tiny_observation, fixed_noise):
    """`.base_layer.` in non-LoRA keys (peft ≥ 0.7) and `.default` in adapter keys."""
    root, base = copy
    _rewrite(root / "non_lora_trainables.bin", lambda k: re.sub(r"(query_key_value|q_proj)\.(weight|bias)$", r"\1.base_layer.\2", k))
    _rewrite_safetensors(root / "adapter_model.safetensors", lambda k: re.sub(r"\.(lora_[AB])\.", r".\1.default.", k))
    policy = load_training_output(root, base=base)
    assert np.array_equal(_run(policy, tiny_observation, fixed_noise), _run(tiny_policy, tiny_observation, fixed_noise))


def test_bare_head_convolutions_are_refused_with_the_cause(copy):
    root, base = copy
    _rewrite(root / "non_lora_trainables.bin", lambda k: k.replace(".2.conv.", ".2."))
    with pytest.raises(CheckpointError) as e:
        load_training_output(root, base=base)
    message = str(e.value)
    assert "a diffusion_policy head with bare convolutions?" in message and "\n" not in message
    assert "8 missing, 8 unexpected" in message  # 2 down + 2 up convolutions, weight and bias
    assert "embed_out.down_modules.0.2.conv.bias | embed_out.down_modules.0.2.bias" in message


def test_native_file_in_transformers_5_names_is_refused_with_the_cause(tmp_path, tiny_policy):
    directory = save_policy(tiny_policy, tmp_path / "native")
    _rewrite_safetensors(directory / "policy.safetensors", _to_transformers_5)
    with pytest.raises(CheckpointError, match=r"written by transformers ≥ 5\?.*\[missing \| unexpected\] "
                                              r"gpt_neox\.vision_tower\.vision_model\.\S+ \| gpt_neox\.vision_tower\.\S+"):
        load_policy(directory)


def test_native_bundle_keeps_reference_names(tmp_path, tiny_policy, tiny_cfg):
    directory = save_policy(tiny_policy, tmp_path / "native")
    names = set(load_file(str(directory / "policy.safetensors")))
    expected = {network_name(k) for k in reference_keys("non_lora", tiny_cfg)}
    assert names == expected


def test_two_keys_for_one_parameter_are_refused():
    state = {"base_model.model.gpt_neox.vision_tower.vision_model.post_layernorm.bias": torch.zeros(1),
             "base_model.model.gpt_neox.vision_tower.post_layernorm.bias": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="both name the parameter 'gpt_neox.vision_tower.vision_model.post_layernorm.bias'"):
        to_network_names(state, "x.bin")


def test_trainable_only_non_lora_takes_frozen_weights_from_the_base(copy, tiny_policy, tiny_observation, fixed_noise):
    """zero_to_fp32 of some DeepSpeed versions leaves frozen parameters out (tinyvla-format §4.1),
    and writes LoRA tensors under peft's module names: the base supplies the rest."""
    root, base = copy
    ckpt = root / "checkpoint-1000"
    state = torch.load(ckpt / "non_lora_trainables.bin", weights_only=True)
    kept = {k: v for k, v in state.items() if ".embed_out." in k or ".mm_projector." in k}
    kept["base_model.model.gpt_neox.layers.0.attention.dense.lora_A.default.weight"] = torch.zeros(4, 32)
    torch.save(kept, ckpt / "non_lora_trainables.bin")
    # The training output's frozen copies were bf16: round the base the same way to compare exactly.
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(str(base / "model.safetensors")).items()}, str(base / "model.safetensors"))
    policy = load_training_output(ckpt, base=base)
    assert np.array_equal(_run(policy, tiny_observation, fixed_noise), _run(tiny_policy, tiny_observation, fixed_noise))
    _rewrite_safetensors(base / "model.safetensors", lambda k: k.replace("final_layer_norm", "ln_f"))
    with pytest.raises(CheckpointError, match=r"keys in neither the base VLM nor the training output: 2 missing, 2 unexpected"
                                              r".*gpt_neox.final_layer_norm.bias \| gpt_neox.ln_f.bias"):
        load_training_output(ckpt, base=base)


@pytest.mark.parametrize("form", ["root", "checkpoint-1000"])
def test_inspect_observation_matches_the_reference_path(form, tiny_output, tiny_base, tiny_observation, fixed_noise, tmp_path):
    """`inspect --observation --noise` on reference-layout files against the independent
    re-implementation (which loads the files under their own names, with no key map)."""
    from edge.cli import main
    from tests.policy.reference_path import reference_chunk

    np.save(tmp_path / "noise.npy", fixed_noise.numpy())
    path = tiny_output if form == "root" else tiny_output / form
    code = main(["inspect", str(path), "--base", str(tiny_base), "--observation", str(tiny_observation),
                 "--noise", str(tmp_path / "noise.npy"), "--output", str(tmp_path / "out.npz"), "--json"])
    assert code == 0
    reference = reference_chunk(tiny_output, tiny_base, tiny_observation, fixed_noise, 10)
    assert np.abs(np.load(tmp_path / "out.npz")["normalized"] - reference).max() <= 1e-5


def test_the_demo_cache_is_keyed_by_the_current_key_layout():
    from edge.demo import TRAINING_OUTPUT_LAYOUT
    from edge.policy.keymap import KEY_LAYOUT

    assert TRAINING_OUTPUT_LAYOUT == KEY_LAYOUT
