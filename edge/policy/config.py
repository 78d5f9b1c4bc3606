"""The policy's configuration: what a TinyVLA model is, independent of where it was loaded from.

`PolicyConfig` is parsed from a TinyVLA training output's `config.json` (a LlavaPythiaConfig with
action fields, written by transformers 4.37) and is also the config of the native format.
Unknown fields are tolerated, because old and forked training runs write extra ones.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.errors import CheckpointError

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


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VisionConfig(_Frozen):
    """CLIP vision tower dimensions and feature selection."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    image_size: int
    patch_size: int
    num_channels: int = 3
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    projection_dim: int = 768
    select_layer: int = -2
    select_feature: Literal["patch", "cls_patch"] = "patch"

    @property
    def tokens_per_image(self) -> int:
        patches = (self.image_size // self.patch_size) ** 2
        return patches if self.select_feature == "patch" else patches + 1


class LanguageConfig(_Frozen):
    """GPT-NeoX (Pythia) dimensions."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int
    rotary_pct: float = 0.25
    rotary_emb_base: float = 10000.0
    max_position_embeddings: int = 2048
    layer_norm_eps: float = 1e-5
    use_parallel_residual: bool = True
    hidden_act: str = "gelu"


class HeadConfig(_Frozen):
    """The diffusion head (`ConditionalUnet1D` with TinyVLA's front-end)."""

    action_dim: int = 10
    state_dim: int = 7
    chunk_size: int = 16
    down_dims: tuple[int, ...] = REFERENCE_DOWN_DIMS
    kernel_size: int = REFERENCE_KERNEL_SIZE
    step_embed_dim: int = REFERENCE_STEP_EMBED_DIM
    n_groups: int = REFERENCE_N_GROUPS
    # The reference computes the sinusoidal step table in bfloat16 (its weights learned that);
    # False computes it in float32, which moves actions by up to ~0.2 on trained weights.
    faithful_bf16_step_embedding: bool = True


class PolicyConfig(_Frozen):
    """Everything needed to build a TinyVLA policy network and feed it."""

    vision: VisionConfig
    language: LanguageConfig
    projector_type: Literal["mlp2x_gelu", "linear"] = "mlp2x_gelu"
    head: HeadConfig
    num_cameras: int = Field(default=2, ge=1)
    camera_names: tuple[str, ...] = ()
    train_timesteps: int = TRAIN_TIMESTEPS
    inference_steps: int = REFERENCE_INFERENCE_STEPS
    pad_token_id: int = 1
    image_token_index: int = -200
    # 10-D actions are xyz + 6D rotation + gripper and convert to 7-D robot commands.
    action_layout: Literal["xyz_rot6d_gripper", "raw"] = "xyz_rot6d_gripper"

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
        return self.model_copy(update={"head": self.head.model_copy(update=changes)})


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

    Raises CheckpointError naming the file and field when it is not a TinyVLA policy config.
    """
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
