"""The one map between checkpoint key names and tinyvla-edge's network (docs/checkpoint-format.md).

The network's parameter names *are* the reference names (TinyVLA's `LlavaPythiaForCausalLM` as
transformers 4.37 and peft 0.4 name it): `edge.policy.network` and `edge.policy.head` mirror the
reference modules, down to `vision_tower.vision_model` and `Downsample1d.conv`. So the map is:

- a training output's keys carry the PEFT wrapper prefix `base_model.model.`; the reference loader
  strips `base_model.` then `model.` (`TRAINING_PREFIX`);
- layouts that other library versions write for the same modules are renamed on load (`ACCEPTED`):
  transformers ≥ 5's flat CLIP names, newer peft's `.base_layer.`;
- layouts no reference code writes are refused, but recognised, so the error names the likely
  cause (`REFUSED`): a diffusion_policy head with bare convolutions.

Everything that turns a file's key into a network name, or back, goes through this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import torch

from edge.errors import CheckpointError

TRAINING_PREFIX = "base_model.model."  # what PEFT's wrapper adds to every saved key
# Names this toolkit writes (native bundles, generated outputs); caches built under another tag are stale.
KEY_LAYOUT = "tinyvla-reference-1"
ADAPTER_NAME = "default"  # peft's adapter name: in module names, never in peft 0.4's saved keys


@dataclass(frozen=True)
class Rename:
    """One known foreign layout: keys matching `pattern` are `replacement`-renamed to reference names."""

    pattern: re.Pattern
    replacement: str
    cause: str  # said in errors when a key set looks like this layout

    def apply(self, key: str) -> str:
        return self.pattern.sub(self.replacement, key)

    def matches(self, key: str) -> bool:
        return bool(self.pattern.search(key))


TRANSFORMERS_5_CLIP = Rename(
    re.compile(r"(^|\.)gpt_neox\.vision_tower\.(?!vision_model\.)"),
    r"\1gpt_neox.vision_tower.vision_model.",
    "written by transformers ≥ 5? (its CLIPVisionModel has no `vision_model.` segment; TinyVLA's tower does)",
)
PEFT_BASE_LAYER = Rename(
    re.compile(r"\.base_layer(?=\.)"),
    "",
    "written by peft ≥ 0.7? (it inserts `.base_layer.` into LoRA-wrapped module names)",
)
BARE_HEAD_CONVOLUTION = Rename(
    re.compile(r"(^|\.)(embed_out\.(?:down|up)_modules\.\d+\.2)\.(weight|bias)$"),
    r"\1\2.conv.\3",
    "a diffusion_policy head with bare convolutions? (TinyVLA's Downsample1d/Upsample1d hold theirs as `.conv`)",
)
# Renamed when loading a training output or a base VLM: the same modules, other library versions.
ACCEPTED: tuple[Rename, ...] = (TRANSFORMERS_5_CLIP, PEFT_BASE_LAYER)
# Recognised only to explain an error: no reference code writes these.
REFUSED: tuple[Rename, ...] = (BARE_HEAD_CONVOLUTION,)
KNOWN_LAYOUTS = ACCEPTED + REFUSED


def strip_training_prefix(key: str) -> str:
    """The reference loader's prefix handling: drop `base_model.`, then `model.`."""
    key = key.removeprefix("base_model.")
    return key.removeprefix("model.")


def network_name(key: str, renames: Iterable[Rename] = ACCEPTED) -> str:
    """The network parameter a file key names (prefix stripped, accepted layouts renamed)."""
    name = strip_training_prefix(key)
    for rename in renames:
        name = rename.apply(name)
    return name


def is_lora_key(key: str) -> bool:
    return "lora_" in key


def to_network_names(state: dict[str, torch.Tensor], where: str, renames: Iterable[Rename] = ACCEPTED) -> dict[str, torch.Tensor]:
    """Rename a non-LoRA state dict onto network names; LoRA tensors are dropped (as the reference
    loader does). Two keys naming the same parameter are an error, not a silent overwrite."""
    renames = tuple(renames)
    out: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    for key, value in state.items():
        if is_lora_key(key):
            continue
        name = network_name(key, renames)
        if name in out:
            raise CheckpointError(f"{where}: keys '{source[name]}' and '{key}' both name the parameter '{name}'")
        out[name], source[name] = value, key
    return out


def training_output_key(name: str) -> str:
    """Network parameter name → its key in `non_lora_trainables.bin`."""
    return TRAINING_PREFIX + name


def adapter_file_key(peft_name: str) -> str:
    """A LoRA parameter of a PeftModel (`base_model.model.X.lora_A.default.weight`) → its key in
    a peft 0.4 adapter file (`base_model.model.X.lora_A.weight`)."""
    return re.sub(rf"\.{ADAPTER_NAME}(?=\.|$)", "", peft_name)


def adapter_state_for_network(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Adapter tensors under the names peft expects for this network (accepted layouts renamed,
    any adapter-name segment dropped)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = TRAINING_PREFIX + network_name(adapter_file_key(key))
        if name in out:
            raise CheckpointError(f"{where}: two adapter keys name the tensor '{name}'")
        out[name] = value
    return out


def target_modules(targets: str | list[str] | None) -> str | list[str] | None:
    """adapter_config.json's `target_modules` for this network: full dotted names (what
    `find_all_linear_names` records) renamed like keys; suffix names and regexes unchanged."""
    if targets is None or isinstance(targets, str):
        return targets
    return [network_name(t) if "." in t else t for t in targets]


def likely_causes(missing: Iterable[str], unexpected: Iterable[str]) -> list[tuple[Rename, list[tuple[str, str]]]]:
    """Known layouts that explain unexpected keys as renamed missing ones: (layout, [(missing, found)])."""
    missing = set(missing)
    found = []
    for rename in KNOWN_LAYOUTS:
        pairs = [(rename.apply(k), k) for k in sorted(unexpected) if rename.matches(k) and rename.apply(k) in missing]
        if pairs:
            found.append((rename, pairs))
    return found


def mismatch_message(where: str, missing: Iterable[str], unexpected: Iterable[str], what: str = "keys do not match TinyVLA's layout", rows: int = 4) -> str:
    """A one-line error: counts, the likely cause, then missing and unexpected keys side by side
    (`missing | unexpected` pairs, a renamed key beside its reference name)."""
    missing, unexpected = sorted(missing), sorted(unexpected)
    causes = likely_causes(missing, unexpected)
    text = f"{where}: {what}: {len(missing)} missing, {len(unexpected)} unexpected"
    if causes:
        text += " — " + "; ".join(rename.cause for rename, _ in causes)
    paired = [pair for _, pairs in causes for pair in pairs]
    explained_m = {m for m, _ in paired}
    explained_u = {u for _, u in paired}
    rest = _zip_longest([k for k in missing if k not in explained_m], [k for k in unexpected if k not in explained_u])
    table = paired + list(rest)
    shown = "; ".join(f"{m or '-'} | {u or '-'}" for m, u in table[:rows])
    more = f" (+{len(table) - rows} more)" if len(table) > rows else ""
    return f"{text}. [missing | unexpected] {shown}{more}"


def _zip_longest(a: list[str], b: list[str]):
    for i in range(max(len(a), len(b))):
        yield (a[i] if i < len(a) else ""), (b[i] if i < len(b) else "")
