"""tinyvla-edge's own format for a merged policy: safetensors + JSON, never pickle.

A directory with `policy.json` (config, normalization stats, image settings, source),
`policy.safetensors` (merged fp32 weights under the reference's names, exactly: a file in another
layout is refused with the likely cause, see `edge.policy.keymap`) and `tokenizer.json`.
The quantization stage and the bundle build on it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge.errors import CheckpointError, first_invalid_field
from edge.policy.actions import NormStats
from edge.policy.config import PolicyConfig
from edge.policy.keymap import mismatch_message
from edge.policy.network import TinyVLANetwork
from edge.policy.policy import Policy
from edge.policy.preprocess import ImageSettings
from edge.policy.prompt import PromptTokenizer
from edge.policy.safe_io import load_tensors

FORMAT = "tinyvla-edge-policy"
FORMAT_VERSION = 1
CONFIG_FILE = "policy.json"
WEIGHTS_FILE = "policy.safetensors"
TOKENIZER_FILE = "tokenizer.json"


def policy_metadata(policy: Policy) -> dict:
    """The JSON description of a policy (also embedded in bundle manifests)."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": policy.config.model_dump(mode="json"),
        "norm_stats": policy.stats.model_dump(mode="json"),
        "image_settings": policy.image_settings.model_dump(mode="json"),
        "source": policy.source,
    }


def save_policy(policy: Policy, directory: Path) -> Path:
    """Write the policy to `directory` (created)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in policy.network.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    shutil.copyfile(policy.tokenizer.path, directory / TOKENIZER_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(policy_metadata(policy), indent=2))
    return directory


def policy_from_metadata(meta: dict, tokenizer_file: Path, tokenizer_json: bytes | None = None
                         ) -> tuple[PolicyConfig, NormStats, ImageSettings, PromptTokenizer]:
    """Parse the pieces of `policy_metadata` back (`tokenizer_json`: the verified file's bytes)."""
    try:
        cfg = PolicyConfig.model_validate(meta["config"])
        stats = NormStats.model_validate(meta["norm_stats"])
        settings = ImageSettings.model_validate(meta["image_settings"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"policy description is invalid: {first_invalid_field(e)}") from e
    return cfg, stats, settings, PromptTokenizer(tokenizer_file, tokenizer_json)


def load_policy(directory: Path) -> Policy:
    """Load a policy saved by `save_policy`, strictly."""
    directory = Path(directory)
    meta_path = directory / CONFIG_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{directory}: not a tinyvla-edge policy (no {CONFIG_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{meta_path}: not readable JSON: {e}") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: unsupported format {meta.get('format')} v{meta.get('version')}")
    cfg, stats, settings, tokenizer = policy_from_metadata(meta, directory / TOKENIZER_FILE)
    network = TinyVLANetwork(cfg)
    state = load_tensors(directory / WEIGHTS_FILE)
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(mismatch_message(str(directory / WEIGHTS_FILE), missing, unexpected))
    network.load_state_dict(state, strict=True)
    return Policy(network.eval(), tokenizer, settings, stats, meta.get("source", {}))
