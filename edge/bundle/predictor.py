"""A verified bundle as a `ChunkPredictor` (edge.policy.contract): the engines its manifest names,
built from the bytes verification read (never from a second open by path).

Each component hands its output to the next on the device it produced it on (a CUDA engine's
tokens stay on the GPU for the next CUDA engine); the chunk becomes numpy once, at the end."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from edge.bundle.manifest import BACKBONE_WEIGHTS, TOKENIZER, ComponentEntry, Manifest
from edge.bundle.verify import VerifiedBundle, open_verified
from edge.engines.table import ENGINES, ONNX, builder_stand_in, load_onnx, load_torch, require
from edge.engines.table import head_builder_stand_in, head_engine, load_head, require_head
from edge.errors import BundleError, EdgeError
from edge.policy.actions import ActionDecoder
from edge.policy.components import split_prompt, suffix_length
from edge.policy.contract import Prediction, Stopwatch
from edge.policy.head import ConditionalUnet1D
from edge.policy.native import policy_from_metadata
from edge.policy.preprocess import preprocess_cameras
from edge.policy.prompt import IMAGE_TOKEN_INDEX
from edge.policy.sampler import DDIMSampler


def check_engines(manifest: Manifest) -> None:
    """Every engine the manifest names must be able to run here (one line naming what is missing)."""
    for name, comp in manifest.components.items():
        require(comp.engine, name)
    require_head(manifest.head.engine, manifest.head.precision)


def _load_state(bundle: VerifiedBundle, rel: str, prefix: str) -> dict[str, torch.Tensor]:
    """Tensors of a verified safetensors file whose names start with `prefix` (prefix removed)."""
    from safetensors.torch import load

    try:
        state = load(bundle.read(rel))
    except Exception as e:  # safetensors raises its own error type for a bad header or body
        raise BundleError(f"{rel}: not a readable safetensors file: {(str(e).splitlines() or [''])[0][:200]}") from e
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _torch_backbone(bundle: VerifiedBundle, cfg):
    """The backbone as torch modules (for torch / torch-tensorrt / bitsandbytes engines)."""
    from edge.policy.components import LanguageComponent, VisionComponent
    from edge.policy.network import TinyVLANetwork

    if BACKBONE_WEIGHTS not in bundle.manifest.files:
        raise BundleError(f"{BACKBONE_WEIGHTS} is not in the hashed files list (a torch engine needs it)")
    net = TinyVLANetwork(cfg)
    state = _load_state(bundle, BACKBONE_WEIGHTS, "")
    expected = net.state_dict()
    missing = [k for k in expected if k.startswith("gpt_neox.") and k not in state]
    if missing:
        raise BundleError(f"{BACKBONE_WEIGHTS}: missing tensors {missing[:3]}")
    wrong = [k for k, v in state.items() if k not in expected or v.shape != expected[k].shape]
    if wrong:
        raise BundleError(f"{BACKBONE_WEIGHTS}: tensor '{wrong[0][:100]}' is unexpected or mis-shaped for the config")
    net.load_state_dict({**expected, **state})
    return VisionComponent(net).eval(), LanguageComponent(net).eval()


def _onnx_runner(bundle: VerifiedBundle, name: str, entry: ComponentEntry, engine: str):
    """onnxruntime on the verified model bytes; a model with external data (`<file>.data`, also
    verified) is written with it to a private temporary directory, since onnxruntime reads
    external data by path."""
    trt_cache = None
    if engine == "onnxruntime-trt":
        from edge.engines.cache import EngineCache, engine_key

        # ORT's TensorRT EP manages its engine files itself: give it a device directory keyed by
        # this ONNX file's verified sha256, so a bundle's engines are never another model's.
        trt_cache = str(EngineCache().directory(engine_key(bundle.sha256(entry.file), name, {"ep": "tensorrt"})))
    data_file = f"{entry.file}.data"
    if data_file not in bundle.manifest.files:
        return load_onnx(engine, bundle.read(entry.file), entry.file, trt_cache)
    with tempfile.TemporaryDirectory(prefix="tinyvla-onnx-") as private:
        for rel in (entry.file, data_file):
            (Path(private) / Path(rel).name).write_bytes(bundle.read(rel))
        return load_onnx(engine, Path(private) / Path(entry.file).name, entry.file, trt_cache)


def _runner(name: str, entry: ComponentEntry, bundle: VerifiedBundle, torch_module, example_inputs, builder: bool):
    """The component's runner, by the engine table (the manifest already mapped older names);
    `builder`: the workstation's stand-in engine (`builder_stand_in`)."""
    engine = builder_stand_in(entry.engine) if builder else entry.engine
    if ENGINES[engine].file_kind == ONNX:
        return _onnx_runner(bundle, name, entry, engine)
    return load_torch(engine, torch_module, entry.precision, example_inputs, bundle.sha256(entry.file), name)


class BundlePredictor:
    """A verified bundle as a `ChunkPredictor`: preprocess → vision → language → K-step head."""

    def __init__(self, bundle: VerifiedBundle, seed: int = 0, builder: bool = False):
        self.directory, self.manifest = bundle.directory, bundle.manifest
        manifest = bundle.manifest
        self.config, self.stats, self.image_settings, self.tokenizer = policy_from_metadata(
            manifest.policy, bundle.directory / TOKENIZER, _tokenizer_bytes(bundle))
        cfg = self.config
        self.decoder = ActionDecoder(self.stats, cfg.action_layout)
        self.camera_names = tuple(manifest.camera_names)
        h = cfg.head
        self.chunk_size, self.action_dim, self.state_dim = h.chunk_size, h.action_dim, h.state_dim
        self.max_prompt_tokens = manifest.prompt.max_prompt_tokens
        self.prefix_ids = torch.tensor([manifest.prompt.prefix_ids], dtype=torch.long)
        try:
            self.sampler = DDIMSampler(manifest.head.sampler.timesteps, cfg.train_timesteps)
        except ValueError as e:
            raise BundleError(f"head.sampler: {e}") from e
        self.head_steps = self.sampler.steps
        self.head = ConditionalUnet1D(cfg.language.hidden_size, h)
        try:
            self.head.load_state_dict(_load_state(bundle, manifest.head.file, "embed_out."))
        except RuntimeError as e:  # missing, unexpected or mis-shaped keys
            raise BundleError(f"{manifest.head.file}: does not match the config: {str(e).splitlines()[0][:200]}") from e
        self.head.eval()
        self.head_runner = _head_runner(bundle, self.head, self.sampler, builder)
        needs_torch = any(ENGINES[c.engine].file_kind != ONNX for c in manifest.components.values())
        vision_mod, language_mod = _torch_backbone(bundle, cfg) if needs_torch else (None, None)
        cams, s, tokens = cfg.num_cameras, cfg.vision.image_size, cfg.image_tokens
        px = torch.zeros(cams, 3, s, s)
        img = torch.zeros(1, tokens, cfg.language.hidden_size)
        suffix = torch.zeros(1, self.max_prompt_tokens, dtype=torch.long)
        self.vision = _runner("vision", manifest.components["vision"], bundle, vision_mod, [px], builder)
        self.language = _runner("language", manifest.components["language"], bundle, language_mod, [self.prefix_ids, img, suffix], builder)
        self._generator = torch.Generator().manual_seed(seed)

    def tokens(self, instruction: str) -> tuple[torch.Tensor, int]:
        """Right-padded suffix ids for the instruction and the real suffix length."""
        ids = self.tokenizer.encode_instruction(instruction)
        prefix, suffix, real = split_prompt(ids, IMAGE_TOKEN_INDEX, self.max_prompt_tokens, self.config.pad_token_id)
        if prefix != self.manifest.prompt.prefix_ids:
            raise BundleError("prompt prefix differs from the bundle's (tokenizer mismatch)")
        return torch.tensor([suffix], dtype=torch.long), real

    def prompt_tokens(self, instruction: str) -> int:
        """Prompt tokens the instruction takes against the bundle's budget (may exceed it)."""
        return suffix_length(self.tokenizer.encode_instruction(instruction), IMAGE_TOKEN_INDEX)

    def condition(self, images: list[np.ndarray], state: np.ndarray, instruction: str, watch: Stopwatch | None = None) -> torch.Tensor:
        """Backbone + head front-end: the per-observation condition [1, H], on the head's device."""
        watch = watch or Stopwatch()
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
        weight = next(self.head.parameters())  # where and at what precision the head runs
        valid = self.prefix_ids.shape[1] + image_tokens.shape[1] + real
        mask = torch.arange(hidden.shape[1], device=weight.device)[None] < valid
        with torch.inference_mode():
            return self.head.encode_condition(hidden.to(weight.device, weight.dtype), states.to(weight.device), mask)

    @torch.inference_mode()
    def predict(self, images, state, instruction, noise=None) -> Prediction:
        watch = Stopwatch()
        cond = self.condition(images, state, instruction, watch)
        if noise is None:
            noise = torch.randn((1, self.chunk_size, self.action_dim), generator=self._generator)
        x = self.head_runner(cond, torch.as_tensor(noise, dtype=torch.float32).to(cond.device))
        normalized = x[0].float().cpu().numpy()  # the one conversion to the host, after the last stage
        watch.lap("head")
        return Prediction(normalized, watch.times)


def _head_runner(bundle: VerifiedBundle, head: ConditionalUnet1D, sampler: DDIMSampler, builder: bool):
    """The head's K-step loop on the engine its manifest entry names (`edge.engines.table.load_head`);
    `builder`: the workstation's stand-in (`head_builder_stand_in`)."""
    entry = bundle.manifest.head
    row = head_engine(entry.engine, entry.precision)
    if builder:
        row = head_builder_stand_in(row)
    network = bundle.read(entry.network_file) if row.file_kind == ONNX else None
    return load_head(row, head, sampler, network, entry.network_file or entry.file)


def _tokenizer_bytes(bundle: VerifiedBundle) -> bytes:
    if TOKENIZER not in bundle.manifest.files:
        raise BundleError(f"{bundle.directory}: {TOKENIZER} is not in the hashed files list")
    return bundle.read(TOKENIZER)


def load_predictor(directory: Path, seed: int = 0, require_engines: bool = True) -> BundlePredictor:
    """Verify the bundle, check its engines can run here, and build its predictor from the
    verified bytes. `require_engines=False` is the builder's: the quantize stage measures a
    bundle on the workstation, with ONNX components on onnxruntime-cpu (`builder_stand_in`)."""
    with open_verified(Path(directory)) as bundle:
        if require_engines:
            check_engines(bundle.manifest)
        try:
            return BundlePredictor(bundle, seed, builder=not require_engines)
        except EdgeError:
            raise
        except (ValueError, RuntimeError) as e:  # shapes or values the config allows but torch refuses
            raise BundleError(f"{directory}: cannot build the policy: {(str(e).splitlines() or [''])[0][:200]}") from e
