"""The policy's configuration: what a TinyVLA model is, independent of where it was loaded from.

`PolicyConfig` is parsed from a TinyVLA training output's `config.json` (a LlavaPythiaConfig with
action fields, written by transformers 4.37) and is also the config of the native format.
Unknown fields are tolerated, because old and forked training runs write extra ones.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.errors import CheckpointError, first_invalid_field

# Facts the reference hard-codes instead of recording in config.json (tinyvla-format.md §2, §3).
REFERENCE_DOWN_DIMS = (256, 512, 1024)
REFERENCE_KERNEL_SIZE = 5
REFERENCE_STEP_EMBED_DIM = 256
REFERENCE_N_GROUPS = 8
TRAIN_TIMESTEPS = 100
REFERENCE_INFERENCE_STEPS = 10

# Reference variants by LLM width (tinyvla-format.md §1.1).
VARIANTS = {
    (512, 6, 8): "S",
    (1024, 24, 16): "B",
    (2048, 16, 8): "H",
}


# Bounds on every dimension, checked before anything is allocated (docs/security.md): generous
# for TinyVLA-H (CLIP ViT-L/14-336: 1024 wide, 24 layers, 4096 MLP, 336 px / 14; Pythia-1B: 2048
# wide, 16 layers, 8192 MLP, vocab 50304, 2048 positions; head 256-512-1024, chunk 16) and small
# enough that a hostile config cannot ask for terabytes.
MAX_WIDTH = 8192  # hidden sizes
MAX_MLP_WIDTH = 32768  # intermediate sizes
MAX_LAYERS = 96
MAX_HEADS = 128
MAX_VOCAB = 262144
MAX_POSITIONS = 16384
MAX_IMAGE_SIZE = 1024  # the vision tower's input side, pixels
MAX_IMAGE_TOKENS = 4096  # per camera
MAX_CAMERAS = 8
MAX_ACTION_DIM = 64
MAX_STATE_DIM = 256
MAX_CHUNK_SIZE = 256
MAX_HEAD_WIDTH = 4096  # each of down_dims
MAX_TRAIN_TIMESTEPS = 10000
MAX_BACKBONE_PARAMETERS = 4_000_000_000  # TinyVLA-H's backbone is about 1.2e9

Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
MlpWidth = Annotated[int, Field(ge=1, le=MAX_MLP_WIDTH)]
Layers = Annotated[int, Field(ge=1, le=MAX_LAYERS)]
Heads = Annotated[int, Field(ge=1, le=MAX_HEADS)]
Epsilon = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VisionConfig(_Frozen):
    """CLIP vision tower dimensions and feature selection."""

    hidden_size: Width
    intermediate_size: MlpWidth
    num_hidden_layers: Layers
    num_attention_heads: Heads
    image_size: int = Field(ge=1, le=MAX_IMAGE_SIZE)
    patch_size: int = Field(ge=1, le=MAX_IMAGE_SIZE)
    num_channels: int = Field(default=3, ge=1, le=4)
    hidden_act: str = "quick_gelu"
    layer_norm_eps: Epsilon = 1e-5
    projection_dim: Width = 768
    select_layer: int = Field(default=-2, ge=-MAX_LAYERS, le=MAX_LAYERS)
    select_feature: Literal["patch", "cls_patch"] = "patch"

    @model_validator(mode="after")
    def _bounded_tokens(self) -> "VisionConfig":
        if self.tokens_per_image > MAX_IMAGE_TOKENS:
            raise ValueError(f"{self.tokens_per_image} tokens per image (image_size / patch_size squared) exceeds {MAX_IMAGE_TOKENS}")
        return self

    @property
    def tokens_per_image(self) -> int:
        patches = (self.image_size // self.patch_size) ** 2
        return patches if self.select_feature == "patch" else patches + 1


class LanguageConfig(_Frozen):
    """GPT-NeoX (Pythia) dimensions."""

    hidden_size: Width
    num_hidden_layers: Layers
    num_attention_heads: Heads
    intermediate_size: MlpWidth
    vocab_size: int = Field(ge=1, le=MAX_VOCAB)
    rotary_pct: float = Field(default=0.25, ge=0, le=1)
    rotary_emb_base: float = Field(default=10000.0, gt=0, allow_inf_nan=False)
    max_position_embeddings: int = Field(default=2048, ge=1, le=MAX_POSITIONS)
    layer_norm_eps: Epsilon = 1e-5
    use_parallel_residual: bool = True
    hidden_act: str = "gelu"


class HeadConfig(_Frozen):
    """The diffusion head (`ConditionalUnet1D` with TinyVLA's front-end)."""

    action_dim: int = Field(default=10, ge=1, le=MAX_ACTION_DIM)
    state_dim: int = Field(default=7, ge=1, le=MAX_STATE_DIM)
    chunk_size: int = Field(default=16, ge=1, le=MAX_CHUNK_SIZE)
    down_dims: tuple[Annotated[int, Field(ge=1, le=MAX_HEAD_WIDTH)], ...] = Field(default=REFERENCE_DOWN_DIMS, min_length=1, max_length=6)
    kernel_size: int = Field(default=REFERENCE_KERNEL_SIZE, ge=1, le=15)
    step_embed_dim: int = Field(default=REFERENCE_STEP_EMBED_DIM, ge=2, le=MAX_HEAD_WIDTH)
    n_groups: int = Field(default=REFERENCE_N_GROUPS, ge=1, le=64)
    # The reference computes the sinusoidal step table in bfloat16 (its weights learned that);
    # False computes it in float32, which moves actions by up to ~0.2 on trained weights.
    faithful_bf16_step_embedding: bool = True


class PolicyConfig(_Frozen):
    """Everything needed to build a TinyVLA policy network and feed it."""

    vision: VisionConfig
    language: LanguageConfig
    projector_type: Literal["mlp2x_gelu", "linear"] = "mlp2x_gelu"
    head: HeadConfig
    num_cameras: int = Field(default=2, ge=1, le=MAX_CAMERAS)
    camera_names: tuple[str, ...] = Field(default=(), max_length=MAX_CAMERAS)
    train_timesteps: int = Field(default=TRAIN_TIMESTEPS, ge=1, le=MAX_TRAIN_TIMESTEPS)
    inference_steps: int = Field(default=REFERENCE_INFERENCE_STEPS, ge=1, le=MAX_TRAIN_TIMESTEPS)
    pad_token_id: int = Field(default=1, ge=0, le=MAX_VOCAB)
    image_token_index: int = -200
    # 10-D actions are xyz + 6D rotation + gripper and convert to 7-D robot commands.
    action_layout: Literal["xyz_rot6d_gripper", "raw"] = "xyz_rot6d_gripper"

    @model_validator(mode="after")
    def _bounded_size(self) -> "PolicyConfig":
        """Refuse a backbone whose weights alone would exceed MAX_BACKBONE_PARAMETERS, before any allocation."""
        v, lm = self.vision, self.language
        blocks = v.num_hidden_layers * (4 * v.hidden_size**2 + 2 * v.hidden_size * v.intermediate_size)
        blocks += lm.num_hidden_layers * (4 * lm.hidden_size**2 + 2 * lm.hidden_size * lm.intermediate_size)
        embeddings = lm.vocab_size * lm.hidden_size + v.num_channels * v.patch_size**2 * v.hidden_size
        if blocks + embeddings > MAX_BACKBONE_PARAMETERS:
            raise ValueError(f"the dimensions give about {(blocks + embeddings) / 1e9:.1f}e9 backbone parameters "
                             f"(at most {MAX_BACKBONE_PARAMETERS / 1e9:.0f}e9 are supported)")
        return self

    @property
    def variant(self) -> str:
        """S/B/H for the reference dimensions, else 'custom'."""
        lm = self.language
        return VARIANTS.get((lm.hidden_size, lm.num_hidden_layers, lm.num_attention_heads), "custom")

    @property
    def image_tokens(self) -> int:
        return self.vision.tokens_per_image * self.num_cameras

    def with_head(self, **changes: Any) -> "PolicyConfig":
        """A copy with head fields replaced (used when shapes are inferred from weights)."""
        # Validated, not model_copy'd: inferred dimensions obey the same bounds.
        return self.model_copy(update={"head": HeadConfig.model_validate({**self.head.model_dump(), **changes})})


def _require(cfg: dict, key: str, where: str) -> Any:
    if key not in cfg:
        raise CheckpointError(f"{where}: missing field '{key}'")
    return cfg[key]


def _vision_from_tinyvla(vision_cfg: dict, where: str) -> VisionConfig:
    tower = vision_cfg.get("vision_tower", vision_cfg)
    fields = {k: tower[k] for k in VisionConfig.model_fields if k in tower}
    fields["select_layer"] = tower.get("mm_vision_select_layer", -2)
    feature = tower.get("mm_vision_select_feature", "patch")
    fields["select_feature"] = feature
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size"):
        _require(tower, key, f"{where} vision_config.vision_tower")
    return VisionConfig(**fields)


def _language_from_tinyvla(cfg: dict, where: str) -> LanguageConfig:
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        _require(cfg, key, where)
    fields = {k: cfg[k] for k in LanguageConfig.model_fields if k in cfg}
    fields.setdefault("intermediate_size", 4 * cfg["hidden_size"])
    return LanguageConfig(**fields)


def policy_config_from_tinyvla(cfg: dict, where: str = "config.json") -> PolicyConfig:
    """Parse a TinyVLA (LlavaPythiaConfig + action fields) config.json into a PolicyConfig.

    Raises CheckpointError naming the file and field when it is not a TinyVLA policy config or a
    dimension is out of bounds.
    """
    try:
        return _policy_config_from_tinyvla(cfg, where)
    except (ValueError, TypeError, AttributeError) as e:  # pydantic's ValidationError is a ValueError
        raise CheckpointError(f"{where}: {first_invalid_field(e)}") from e


def _policy_config_from_tinyvla(cfg: dict, where: str) -> PolicyConfig:
    if "vision_config" not in cfg:
        raise CheckpointError(f"{where}: not a LLaVA-Pythia config (no 'vision_config')")
    head_type = cfg.get("action_head_type")
    if head_type is None or "action_dim" not in cfg:
        raise CheckpointError(
            f"{where}: config has no action fields (action_head_type, action_dim): "
            "this is a base VLM, not a TinyVLA training output"
        )
    if head_type != "droid_diffusion":
        raise CheckpointError(f"{where}: action_head_type '{head_type}' is not supported (only 'droid_diffusion')")
    vision_cfg = cfg["vision_config"]
    projector = vision_cfg.get("mm_projector", {})
    concat = cfg.get("concat", "token_cat")
    if concat not in ("token_cat", None, "None"):
        raise CheckpointError(f"{where}: concat '{concat}' is not supported (only 'token_cat')")
    camera_names = tuple(cfg.get("camera_names", ()) or ())
    num_cameras = len(camera_names) or int(cfg.get("num_cameras", 2))
    head = HeadConfig(
        action_dim=int(cfg["action_dim"]),
        state_dim=int(cfg.get("state_dim", 7)),
        chunk_size=int(cfg.get("chunk_size", 16)),
    )
    return PolicyConfig(
        vision=_vision_from_tinyvla(vision_cfg, where),
        language=_language_from_tinyvla(cfg, where),
        projector_type=projector.get("mm_projector_type", cfg.get("mm_projector_type", "mlp2x_gelu")),
        head=head,
        num_cameras=num_cameras,
        camera_names=camera_names,
        pad_token_id=int(cfg.get("pad_token_id", 1) or 1),
        action_layout="xyz_rot6d_gripper" if head.action_dim == 10 else "raw",
    )
