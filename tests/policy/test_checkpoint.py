"""Loading TinyVLA-layout training outputs: round trips, both file forms, and every failure."""

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from edge.errors import CheckpointError
from edge.policy.checkpoint import load_training_output, locate
from edge.policy.keymap import to_network_names
from edge.policy.native import load_policy, save_policy
from edge.policy.tiny import tiny_config, write_base_vlm, write_training_output
from tests.policy.reference_path import reference_chunk


def run(policy, obs, noise, steps=None):
    data = np.load(obs)
    images = [data[f"image_{i}"] for i in range(policy.config.num_cameras)]
    return policy.predict(images, data["state"], str(data["instruction"]), noise=noise, steps=steps)


@pytest.mark.parametrize("steps", [10, 2])
def test_merged_policy_equals_unmerged_peft_reference_path(tiny_output, tiny_base, tiny_policy, tiny_observation, fixed_noise, steps):
    ours = run(tiny_policy, tiny_observation, fixed_noise, steps).normalized
    reference = reference_chunk(tiny_output, tiny_base, tiny_observation, fixed_noise, steps)
    assert np.abs(ours - reference).max() <= 1e-5


def test_lora_merge_and_trained_weights_matter(tiny_output, tiny_base, tiny_policy, tiny_observation, fixed_noise):
    """Skipping the merge or using the base's weights must change the output, or the
    round-trip test above could not catch either mistake."""
    ours = run(tiny_policy, tiny_observation, fixed_noise).normalized
    unmerged = reference_chunk(tiny_output, tiny_base, tiny_observation, fixed_noise, 10, apply_lora=False)
    assert np.abs(ours - unmerged).max() > 1e-3


def test_checkpoint_dir_and_root_agree(tiny_output, tiny_policy, tiny_observation, fixed_noise):
    from_checkpoint = load_training_output(tiny_output / "checkpoint-1000")
    a = run(tiny_policy, tiny_observation, fixed_noise).normalized
    b = run(from_checkpoint, tiny_observation, fixed_noise).normalized
    assert np.array_equal(a, b)


def test_bin_adapter_and_directory_non_lora_forms(tmp_path, tiny_cfg, tiny_base, tiny_policy, tiny_observation, fixed_noise):
    root = write_training_output(tmp_path / "llava_pythia_lora_alt", tiny_base, tiny_cfg, seed=1,
                                 adapter_format="bin", non_lora_form="directory")
    ckpt = root / "checkpoint-1000"
    assert (ckpt / "adapter_model.bin").is_file() and (ckpt / "non_lora_trainables.bin").is_dir()
    alt = load_training_output(ckpt)
    a = run(tiny_policy, tiny_observation, fixed_noise).normalized
    assert np.abs(run(alt, tiny_observation, fixed_noise).normalized - a).max() <= 1e-6


def test_native_format_round_trip(tmp_path, tiny_policy, tiny_observation, fixed_noise):
    save_policy(tiny_policy, tmp_path / "native")
    assert not list((tmp_path / "native").glob("*.pkl")) and not list((tmp_path / "native").glob("*.bin"))
    again = load_policy(tmp_path / "native")
    a = run(tiny_policy, tiny_observation, fixed_noise)
    b = run(again, tiny_observation, fixed_noise)
    assert np.array_equal(a.normalized, b.normalized) and np.array_equal(a.robot_actions, b.robot_actions)


def test_head_hyperparameters_are_inferred_from_weights(tmp_path, tiny_base):
    forked = tiny_config(down_dims=(8, 16, 32))
    root = write_training_output(tmp_path / "llava_pythia_lora_fork", tiny_base, forked, seed=3)
    policy = load_training_output(root)
    assert policy.config.head.down_dims == (8, 16, 32)


def test_prefix_stripping_handles_old_and_new_peft_names():
    state = {
        "base_model.model.embed_out.combine.weight": torch.zeros(1),
        "base_model.model.gpt_neox.layers.0.attention.dense.base_layer.weight": torch.zeros(1),
        "base_model.model.gpt_neox.layers.0.attention.dense.lora_A.weight": torch.zeros(1),
    }
    assert set(to_network_names(state, "x.bin")) == {"embed_out.combine.weight", "gpt_neox.layers.0.attention.dense.weight"}


# --- failures -------------------------------------------------------------------------------


@pytest.fixture()
def broken(tmp_path, tiny_output):
    """A private copy of the training output to damage."""
    return shutil.copytree(tiny_output, tmp_path / tiny_output.name)


def _edit_non_lora(root, edit):
    path = root / "non_lora_trainables.bin"
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def test_missing_head_key_is_named(broken):
    _edit_non_lora(broken, lambda s: s.pop("base_model.model.embed_out.combine.weight"))
    with pytest.raises(CheckpointError, match="embed_out.combine.weight"):
        load_training_output(broken)


def test_missing_projector_key_is_named(broken):
    _edit_non_lora(broken, lambda s: s.pop("base_model.model.gpt_neox.mm_projector.2.bias"))
    with pytest.raises(CheckpointError, match="mm_projector.2.bias"):
        load_training_output(broken)


def test_misshaped_tensor_is_named(broken):
    def edit(s):
        s["base_model.model.gpt_neox.final_layer_norm.weight"] = torch.ones(5)

    _edit_non_lora(broken, edit)
    with pytest.raises(CheckpointError, match=r"final_layer_norm.weight.*shape \(5,\)"):
        load_training_output(broken)


def test_unexpected_key_is_named(broken):
    _edit_non_lora(broken, lambda s: s.update({"base_model.model.embed_out.extra.weight": torch.ones(2)}))
    with pytest.raises(CheckpointError, match=r"0 missing, 1 unexpected.*\[missing \| unexpected\] - \| embed_out.extra.weight"):
        load_training_output(broken)


def test_truncated_weights(broken):
    path = broken / "non_lora_trainables.bin"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_training_output(broken)


def test_malicious_pickle_is_refused_and_not_executed(broken, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (broken / "dataset_stats.pkl").write_bytes(pickle.dumps({"action_min": Evil()}))
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_training_output(broken)
    assert not marker.exists()


def test_missing_adapter(broken):
    (broken / "adapter_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing adapter_config.json"):
        load_training_output(broken)


def test_adapter_for_another_model_is_refused(broken, tmp_path, tiny_base):
    other = write_training_output(tmp_path / "llava_pythia_lora_wide", tiny_base, tiny_config(), seed=5)
    cfg = json.loads((other / "adapter_config.json").read_text())
    cfg["target_modules"] = ["no_such_module"]
    (broken / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="adapter"):
        load_training_output(broken)


def test_wrong_base_is_refused(broken, tmp_path):
    wrong = write_base_vlm(tmp_path / "wrong-base", tiny_config(hidden=48), seed=0)
    with pytest.raises(CheckpointError, match="does not match the training output: hidden_size 48 vs 32"):
        load_training_output(broken, base=wrong)


def test_missing_base_directory(broken, tmp_path):
    with pytest.raises(CheckpointError, match="base VLM directory not found"):
        load_training_output(broken, base=tmp_path / "nope")
    cfg = json.loads((broken / "config.json").read_text())
    cfg["_name_or_path"] = "lesjie/Llava-Pythia-400M"
    (broken / "config.json").write_text(json.dumps(cfg))
    acfg = json.loads((broken / "adapter_config.json").read_text())
    acfg["base_model_name_or_path"] = "lesjie/Llava-Pythia-400M"
    (broken / "adapter_config.json").write_text(json.dumps(acfg))
    with pytest.raises(CheckpointError, match="not a local directory; pass --base"):
        load_training_output(broken)


def test_config_without_action_fields(broken):
    cfg = json.loads((broken / "config.json").read_text())
    del cfg["action_head_type"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="no action fields"):
        load_training_output(broken)


def test_not_a_training_output(tmp_path):
    with pytest.raises(CheckpointError, match="not a TinyVLA training output"):
        locate(tmp_path)


def test_distilled_native_policy_samples_with_its_own_timesteps(tmp_path, tiny_policy):
    save_policy(tiny_policy, tmp_path / "student")
    meta = json.loads((tmp_path / "student" / "policy.json").read_text())
    meta["source"]["distillation"] = {"method": "output-matching", "steps": 2, "timesteps": [90, 40], "teacher_steps": 10}
    (tmp_path / "student" / "policy.json").write_text(json.dumps(meta))
    student = load_policy(tmp_path / "student")
    assert student.sampler().timesteps.tolist() == [90, 40]
    assert student.sampler(2).timesteps.tolist() == [90, 40]
    assert student.sampler(10).timesteps.tolist() == list(range(90, -1, -10))
    assert tiny_policy.sampler().timesteps.tolist() == list(range(90, -1, -10))
