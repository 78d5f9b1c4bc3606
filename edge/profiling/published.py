"""`tinyvla-edge profile --model tinyvla-s|b|h`: profile the published TinyVLA sizes before training.

A random-weight bundle of the exact published dimensions (reference/tinyvla-format.md §1.1:
CLIP ViT-L/14-336 + Pythia-70M / 410M / 1B + the reference diffusion head, two cameras) is
built once per model and profile, at the profile's precisions, and cached under the demo's
cache directory. Latency, memory and power measured on it are those of a trained model of that
size; its actions are meaningless, and the report says so.

Building a bundle is the quantization stage's work (export, int8 calibration, head distillation),
which the device side never imports: `quantize` provides the builder when it registers its
commands (`provide_bundle_builder`), as it provides the demo's.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge.config import Profile, load_profile
from edge.errors import EdgeError, MissingDependency
from edge.policy.config import LanguageConfig, PolicyConfig
from edge.profiling.model import MeasurementWarning, WarningKind

DEFAULT_MODEL = "tinyvla-s"
# The fewest the quantization stage takes: 2 held back for its fidelity check, 6 to calibrate and
# distil on (distillation holds 2 of those back again). Each calibration frame's activations are
# held until the ranges are computed (CLIP-L/336: GBs per frame), so fewer frames, less memory.
CALIBRATION_FRAMES = 8
# Pythia's public configs: (hidden, layers, heads, MLP width); vocab 50304 for all three.
PUBLISHED_LANGUAGE = {
    "tinyvla-s": (512, 6, 8, 2048),  # Pythia-70M
    "tinyvla-b": (1024, 24, 16, 4096),  # Pythia-410M
    "tinyvla-h": (2048, 16, 8, 8192),  # Pythia-1B
}
PUBLISHED_MODELS = tuple(PUBLISHED_LANGUAGE)


@dataclass(frozen=True)
class BundleBuilder:
    """How the quantization stage turns a training output into a bundle for a profile.

    build(training_output, profile, calibration_dir, bundle_dir); recipe(): a short tag of how it
    builds, so a bundle cached from another recipe is rebuilt."""

    build: Callable[[Path, str, Path, Path], None]
    recipe: Callable[[], str]


_builder: BundleBuilder | None = None


def provide_bundle_builder(builder: BundleBuilder) -> None:
    """Called by the quantization stage's CLI plugin; without it `--model` says what to install."""
    global _builder
    _builder = builder


def published_config(model: str, num_cameras: int) -> PolicyConfig:
    """The published dimensions of `model` (tinyvla-s, tinyvla-b, tinyvla-h) for `num_cameras` cameras."""
    from edge.policy.tiny import s_dimension_config

    if model not in PUBLISHED_LANGUAGE:
        raise EdgeError(f"unknown model '{model}': choose one of {', '.join(PUBLISHED_MODELS)}")
    hidden, layers, heads, width = PUBLISHED_LANGUAGE[model]
    s_config = s_dimension_config(num_cameras=num_cameras)
    language = LanguageConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                              intermediate_size=width, vocab_size=s_config.language.vocab_size)
    return s_config.model_copy(update={"language": language})


def random_weights_warning(model: str) -> MeasurementWarning:
    """The note every report of a random-weight bundle carries."""
    return MeasurementWarning(
        kind=WarningKind.RANDOM_WEIGHTS,
        message=f"random weights with the published {model} dimensions: latency, memory and power are valid for "
                "a trained model of this size; the actions are not",
    )


def published_bundle(model: str, profile_ref: str, say: Callable[[str], None] = lambda line: None) -> Path:
    """The cached random-weight bundle of `model` for the profile `profile_ref` (name or YAML path),
    built first if needed."""
    from edge.demo import _cached, cache_dir

    profile = load_profile(profile_ref)
    if _builder is None:
        raise MissingDependency("profiling a published model builds its bundle with the quantization stage: "
                                "pip install 'tinyvla-edge[quantize]' (or pass a BUNDLE)")
    if not profile.cameras:
        raise EdgeError(f"profile {profile.name} lists no cameras: a published model needs their number and size")
    config = published_config(model, len(profile.cameras))
    root = cache_dir() / "published" / f"{model}-{_digest(config.model_dump_json())}"
    steps = _Steps(say)
    training = _cached(root / "training-output", lambda d: steps.run(
        f"random {model} training output ({_parameters(config)})", lambda: _write_training_output(d, config)),
        say, f"{model} random weights")
    key = _digest(profile.model_dump_json() + _builder.recipe() + f"-frames{CALIBRATION_FRAMES}")
    bundle_root = _cached(root / f"bundle-{profile.name}-{key}", lambda d: _build_bundle(
        training / "llava_pythia_lora_random", profile, profile_ref, d, steps), say, f"{model} bundle for {profile.name}")
    return bundle_root / "bundle"


def _write_training_output(directory: Path, config: PolicyConfig) -> None:
    from edge.policy.tiny import write_base_vlm, write_training_output

    base = write_base_vlm(directory / "base-vlm", config, seed=0)
    write_training_output(directory / "llava_pythia_lora_random", base, config, seed=1)


def _build_bundle(training_output: Path, profile: Profile, profile_ref: str, directory: Path, steps: "_Steps") -> None:
    from drivers.camera.capture import capture

    directory.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="tinyvla-calib-") as frames:
        specs = {c.name: f"synthetic:{c.width}x{c.height}@{c.fps}" for c in profile.cameras}
        steps.run(f"{CALIBRATION_FRAMES} synthetic calibration frames per camera",
                  lambda: capture(specs, CALIBRATION_FRAMES, Path(frames)))
        steps.run(f"bundle at {profile.name}'s precisions (export, calibration, head)",
                  lambda: _builder.build(training_output, profile_ref, Path(frames), directory / "bundle"))


class _Steps:
    """Numbered progress lines, each step's time when it ends (a build takes minutes at full size)."""

    def __init__(self, say: Callable[[str], None]):
        self.say, self.done = say, 0

    def run(self, what: str, work: Callable[[], object]) -> None:
        self.done += 1
        self.say(f"  [{self.done}] {what} ...")
        started = time.monotonic()
        work()
        self.say(f"  [{self.done}] done in {time.monotonic() - started:.0f} s")


def _parameters(config: PolicyConfig) -> str:
    """Parameter count of the network `config` describes, e.g. '422M parameters'."""
    import torch

    from edge.policy.network import TinyVLANetwork

    with torch.device("meta"):
        count = sum(p.numel() for p in TinyVLANetwork(config).parameters())
    return f"{count / 1e6:.0f}M parameters" if count >= 1e6 else f"{count / 1e3:.0f}k parameters"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]

