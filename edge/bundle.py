"""The edge bundle: the only thing that crosses from the workstation to the device.

A directory holding `manifest.json`, `manifest.sha256` and weight files (safetensors, ONNX;
never pickle). `verify` checks the schema version and the sha256 of every file before any weight
is used; `load_predictor` then builds the engines the manifest names. See docs/bundle-format.md.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from edge import __version__
from edge.engines import require_engine
from edge.errors import BundleError
from edge.policy.actions import make_chunk
from edge.policy.components import split_prompt, suffix_length
from edge.policy.head import ConditionalUnet1D
from edge.policy.native import policy_from_metadata
from edge.policy.predictor import Prediction, _Stopwatch
from edge.policy.preprocess import preprocess_cameras
from edge.policy.prompt import IMAGE_TOKEN_INDEX
from edge.policy.sampler import DDIMSampler

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
ENGINE_CACHE = "engine_cache"  # device-built engines; not part of the verified contents
TOKENIZER = "tokenizer.json"
BACKBONE_WEIGHTS = "backbone.safetensors"
HEAD_WEIGHTS = "head.safetensors"


class ComponentEntry(BaseModel):
    """One component: which engine runs it, at which precision, from which file."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["torch", "onnxruntime", "tensorrt", "bitsandbytes"]
    precision: Literal["fp32", "fp16", "bf16", "int8"]
    file: str
    input_shapes: dict[str, list[int]] = {}
    quantization: dict | None = None
    export: dict | None = None  # how an ONNX file was exported (opset, attention form)


class HeadEntry(BaseModel):
    """The diffusion head and how it is sampled."""

    model_config = ConfigDict(extra="forbid")

    file: str
    engine: Literal["torch"] = "torch"
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    steps: int
    teacher_steps: int
    distilled: bool
    method: str | None = None
    sampler: dict


class Manifest(BaseModel):
    """manifest.json."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int
    toolkit_version: str
    created_at: str
    source: dict
    profile: str
    policy: dict  # edge.policy.native.policy_metadata: config, norm stats, image settings
    camera_names: list[str]
    camera_resolution: dict[str, list[int]] | None = None
    prompt: dict  # prefix_ids, max_prompt_tokens (suffix budget), pad_token_id, template
    components: dict[str, ComponentEntry]  # vision, language
    head: HeadEntry
    fidelity: dict = {}
    files: dict[str, str]  # relative path → sha256


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_files(directory: Path) -> list[str]:
    """Every file of a bundle that the manifest must hash (relative paths, sorted)."""
    skip = {MANIFEST, MANIFEST_HASH}
    return sorted(
        str(p.relative_to(directory)) for p in directory.rglob("*")
        if p.is_file() and p.name not in skip and ENGINE_CACHE not in p.relative_to(directory).parts
    )


def write_manifest(directory: Path, manifest: dict) -> Manifest:
    """Hash every file, validate and write manifest.json + manifest.sha256."""
    manifest = dict(manifest, files={f: sha256_file(directory / f) for f in content_files(directory)})
    parsed = Manifest.model_validate(manifest)
    text = json.dumps(parsed.model_dump(mode="json"), indent=2)
    (directory / MANIFEST).write_text(text)
    (directory / MANIFEST_HASH).write_text(hashlib.sha256(text.encode()).hexdigest() + "\n")
    return parsed


def new_manifest_fields(profile: str) -> dict:
    return {"schema_version": SCHEMA_VERSION, "toolkit_version": __version__,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "profile": profile}


def verify(directory: Path) -> Manifest:
    """Verify a bundle before anything is loaded: schema version, manifest hash, every file."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BundleError(f"bundle not found: {directory}")
    if not path.is_file():
        raise BundleError(f"{directory}: not a bundle (no {MANIFEST})")
    raw = path.read_bytes()
    recorded = (directory / MANIFEST_HASH).read_text().strip() if (directory / MANIFEST_HASH).is_file() else None
    if recorded is None:
        raise BundleError(f"{directory}: missing file {MANIFEST_HASH}")
    if hashlib.sha256(raw).hexdigest() != recorded:
        raise BundleError(f"{directory}: hash mismatch in {MANIFEST} / {MANIFEST_HASH} (one was modified or corrupted)")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: not valid JSON: {e}") from e
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{path}: unknown schema version {version} (this toolkit reads {SCHEMA_VERSION}; upgrade tinyvla-edge)")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise BundleError(f"{path}: field '{'.'.join(map(str, err['loc']))}': {err['msg']}") from e
    for rel, digest in manifest.files.items():
        f = directory / rel
        if not f.is_file():
            raise BundleError(f"{directory}: missing file {rel}")
        if sha256_file(f) != digest:
            raise BundleError(f"{directory}: hash mismatch in {rel} (modified or corrupted)")
    extra = sorted(set(content_files(directory)) - set(manifest.files))
    if extra:
        raise BundleError(f"{directory}: file not in the manifest: {extra[0]}")
    return manifest


def check_engines(manifest: Manifest) -> None:
    """Every engine the manifest names must be able to run here."""
    for name, comp in manifest.components.items():
        require_engine(comp.engine, name)
    require_engine(manifest.head.engine, "head")


def _load_state(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k[len(prefix):]: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}


def _torch_backbone(directory: Path, manifest: Manifest, cfg):
    """The backbone as torch modules (for torch / tensorrt / bitsandbytes engines)."""
    from edge.policy.components import LanguageComponent, VisionComponent
    from edge.policy.network import TinyVLANetwork

    net = TinyVLANetwork(cfg)
    state = _load_state(directory / BACKBONE_WEIGHTS, "")
    missing = [k for k in net.state_dict() if k.startswith("gpt_neox.") and k not in state]
    if missing:
        raise BundleError(f"{BACKBONE_WEIGHTS}: missing tensors {missing[:3]}")
    net.load_state_dict({**net.state_dict(), **state})
    return VisionComponent(net).eval(), LanguageComponent(net).eval()


def _runner(name: str, entry: ComponentEntry, directory: Path, torch_module, example_inputs):
    if entry.engine == "onnxruntime":
        from edge.engines.onnx_engine import OnnxRunner

        return OnnxRunner(directory / entry.file)
    if entry.engine == "torch":
        from edge.engines.torch_engine import TorchRunner

        return TorchRunner(torch_module, entry.precision)
    if entry.engine == "tensorrt" and entry.file.endswith(".onnx"):
        from edge.engines.onnx_engine import OnnxRunner

        cache = str(directory / ENGINE_CACHE)
        trt = ("TensorrtExecutionProvider", {"trt_int8_enable": True, "trt_fp16_enable": True,
                                             "trt_engine_cache_enable": True, "trt_engine_cache_path": cache})
        return OnnxRunner(directory / entry.file, providers=[trt, "CUDAExecutionProvider", "CPUExecutionProvider"])
    if entry.engine == "tensorrt":
        from edge.engines.tensorrt_engine import TensorRTRunner

        return TensorRTRunner(torch_module, entry.precision, example_inputs, directory / ENGINE_CACHE, name)
    from edge.engines.bnb_engine import to_llm_int8
    from edge.engines.torch_engine import TorchRunner

    return TorchRunner(to_llm_int8(torch_module, name), "fp16")


class BundlePredictor:
    """A verified bundle as a `ChunkPredictor`: preprocess → vision → language → K-step head."""

    def __init__(self, directory: Path, manifest: Manifest, seed: int = 0):
        self.directory, self.manifest = directory, manifest
        meta = manifest.policy
        self.config, self.stats, self.image_settings, self.tokenizer = policy_from_metadata(meta, directory / TOKENIZER)
        cfg = self.config
        self.camera_names = tuple(manifest.camera_names)
        h = cfg.head
        self.chunk_size, self.action_dim, self.state_dim = h.chunk_size, h.action_dim, h.state_dim
        self.max_prompt_tokens = int(manifest.prompt["max_prompt_tokens"])
        self.prefix_ids = torch.tensor([manifest.prompt["prefix_ids"]], dtype=torch.long)
        self.sampler = DDIMSampler(manifest.head.sampler["timesteps"], cfg.train_timesteps)
        self.head_steps = self.sampler.steps
        self.head = ConditionalUnet1D(cfg.language.hidden_size, h)
        self.head.load_state_dict(_load_state(directory / manifest.head.file, "embed_out."))
        self.head.eval()
        # ONNX components (onnxruntime, or tensorrt through ORT's TensorRT provider) need no torch modules.
        needs_torch = any(not c.file.endswith(".onnx") for c in manifest.components.values())
        vision_mod, language_mod = _torch_backbone(directory, manifest, cfg) if needs_torch else (None, None)
        cams, s, tokens = cfg.num_cameras, cfg.vision.image_size, cfg.image_tokens
        px = torch.zeros(cams, 3, s, s)
        img = torch.zeros(1, tokens, cfg.language.hidden_size)
        suffix = torch.zeros(1, self.max_prompt_tokens, dtype=torch.long)
        self.vision = _runner("vision", manifest.components["vision"], directory, vision_mod, [px])
        self.language = _runner("language", manifest.components["language"], directory, language_mod, [self.prefix_ids, img, suffix])
        self._generator = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            self._step_features = self.head.step_features(self.sampler.timesteps)

    def tokens(self, instruction: str) -> tuple[torch.Tensor, int]:
        """Right-padded suffix ids for the instruction and the real suffix length."""
        ids = self.tokenizer.encode_instruction(instruction)
        prefix, suffix, real = split_prompt(ids, IMAGE_TOKEN_INDEX, self.max_prompt_tokens, self.config.pad_token_id)
        if prefix != self.manifest.prompt["prefix_ids"]:
            raise BundleError("prompt prefix differs from the bundle's (tokenizer mismatch)")
        return torch.tensor([suffix], dtype=torch.long), real

    def prompt_tokens(self, instruction: str) -> int:
        """Prompt tokens the instruction takes against the bundle's budget (may exceed it)."""
        return suffix_length(self.tokenizer.encode_instruction(instruction), IMAGE_TOKEN_INDEX)

    def postprocess(self, normalized: np.ndarray):
        """Normalized chunk → ActionChunk (de-normalized, robot commands)."""
        return make_chunk(normalized, self.stats, self.config.action_layout)

    def condition(self, images: list[np.ndarray], state: np.ndarray, instruction: str, watch: _Stopwatch | None = None) -> torch.Tensor:
        """Backbone + head front-end: the per-observation condition [1, H]."""
        watch = watch or _Stopwatch()
        if len(images) != len(self.camera_names):
            raise BundleError(f"this bundle takes {len(self.camera_names)} cameras ({', '.join(self.camera_names)}), got {len(images)}")
        try:
            suffix, real = self.tokens(instruction)
        except ValueError as e:
            raise BundleError(str(e)) from e
        pixels = preprocess_cameras(images, self.image_settings)
        states = torch.from_numpy(self.stats.normalize_state(np.asarray(state, dtype=np.float32)))[None]
        watch.lap("preprocess")
        image_tokens = self.vision(pixels)
        watch.lap("vision")
        hidden = self.language(self.prefix_ids, image_tokens, suffix)
        watch.lap("language")
        valid = self.prefix_ids.shape[1] + image_tokens.shape[1] + real
        mask = torch.arange(hidden.shape[1])[None] < valid
        with torch.inference_mode():
            return self.head.encode_condition(hidden, states, mask)

    @torch.inference_mode()
    def predict(self, images, state, instruction, noise=None) -> Prediction:
        watch = _Stopwatch()
        cond = self.condition(images, state, instruction, watch)
        if noise is None:
            noise = torch.randn((1, self.chunk_size, self.action_dim), generator=self._generator)
        x = self.sampler.sample(lambda i, s: self.head.denoise(s, self._step_features[i : i + 1], cond), noise.float())
        watch.lap("head")
        chunk = self.postprocess(x[0].numpy())
        watch.lap("postprocess")
        return Prediction(chunk, watch.times)


def load_predictor(directory: Path, seed: int = 0) -> BundlePredictor:
    """Verify the bundle, check its engines can run here, and build its predictor."""
    directory = Path(directory)
    manifest = verify(directory)
    check_engines(manifest)
    return BundlePredictor(directory, manifest, seed)


def bundle_facts(manifest: Manifest) -> dict:
    """What `inspect` prints for a bundle."""
    return {
        "profile": manifest.profile,
        "created_at": manifest.created_at,
        "toolkit_version": manifest.toolkit_version,
        "source_fingerprint": manifest.source.get("fingerprint"),
        "camera_names": manifest.camera_names,
        "max_prompt_tokens": manifest.prompt["max_prompt_tokens"],
        "components": {k: v.model_dump(exclude={"quantization", "export"}) for k, v in manifest.components.items()},
        "head_sampling": {"steps": manifest.head.steps, "teacher_steps": manifest.head.teacher_steps,
                          "distilled": manifest.head.distilled, "method": manifest.head.method,
                          "timesteps": manifest.head.sampler["timesteps"]},
        "fidelity": manifest.fidelity,
        "files": len(manifest.files),
    }
