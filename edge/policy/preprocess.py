"""Observation preprocessing and action post-processing, exactly as TinyVLA's eval path.

Images (tinyvla-format.md §1.5): uint8 RGB → 0–1 float → 95% centre crop, resized back with
antialiased bilinear (torchvision's tensor Resize) → pad to square with the CLIP mean →
CLIP processor arithmetic of transformers 4.37's slow `CLIPImageProcessor`: float → uint8 by
*truncation*, PIL bicubic resize, ÷255, normalize. We implement that arithmetic here rather than
call whichever processor class the installed transformers picks (newer ones may round or resize
on tensors, which moves outputs by ~0.03).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from edge.errors import CheckpointError, first_invalid_field

CROP_RATIO = 0.95
# A camera frame's sides, checked before any buffer is made (padding makes a side² × 3 float32
# square: 4096 px is 200 MB). The processor's output side is bounded like the vision tower's.
MAX_FRAME_SIDE = 4096
MAX_PROCESSOR_SIZE = 1024
Channel = Annotated[float, Field(allow_inf_nan=False)]
Spread = Annotated[float, Field(gt=0, allow_inf_nan=False)]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageSettings(BaseModel):
    """The CLIP processor settings that matter, read from `preprocessor_config.json`."""

    model_config = ConfigDict(frozen=True)

    size: int = Field(default=336, ge=1, le=MAX_PROCESSOR_SIZE)
    image_mean: tuple[Channel, Channel, Channel] = CLIP_MEAN
    image_std: tuple[Spread, Spread, Spread] = CLIP_STD
    resample: int = Field(default=3, ge=0, le=5)  # PIL filters; 3 is bicubic
    crop_resize: bool = True  # the diffusion head's deterministic 95% crop

    @classmethod
    def from_processor_config(cls, path: Path) -> "ImageSettings":
        """Parse a HF `preprocessor_config.json` (old and new `size` layouts); CheckpointError when
        it is not valid JSON or a value is out of bounds."""
        try:
            cfg = json.loads(Path(path).read_text())
            size = cfg.get("size", 336)
            if isinstance(size, dict):
                size = size.get("shortest_edge") or size.get("height") or 336
            return cls(size=size, image_mean=tuple(cfg.get("image_mean", CLIP_MEAN)),
                       image_std=tuple(cfg.get("image_std", CLIP_STD)), resample=cfg.get("resample", 3))
        except (OSError, ValueError, TypeError, AttributeError) as e:  # JSON and pydantic errors are ValueErrors
            raise CheckpointError(f"{path}: {first_invalid_field(e)}") from e

    def processor_config(self) -> dict:
        """A `preprocessor_config.json` that CLIPImageProcessor reads back to these settings."""
        return {
            "crop_size": {"height": self.size, "width": self.size},
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "do_convert_rgb": True,
            "do_rescale": True,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "image_processor_type": "CLIPImageProcessor",
            "resample": self.resample,
            "rescale_factor": 1 / 255,
            "size": {"shortest_edge": self.size},
        }


def center_crop_resize(image: torch.Tensor, ratio: float = CROP_RATIO) -> torch.Tensor:
    """The eval path's deterministic crop: keep the central `ratio`, resize back (C×H×W float)."""
    h, w = image.shape[-2:]
    top, bottom = int(h * (1 - ratio) / 2), int(h * (1 + ratio) / 2)
    left, right = int(w * (1 - ratio) / 2), int(w * (1 + ratio) / 2)
    cropped = image[..., top:bottom, left:right]
    return F.interpolate(cropped[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]


def expand_to_square(image: torch.Tensor, fill: tuple[float, ...]) -> np.ndarray:
    """Pad C×H×W to a centred square (H×W×C float32), filling with the CLIP mean (0–1 scale)."""
    c, h, w = image.shape
    side = max(h, w)
    out = np.empty((side, side, c), dtype=np.float32)
    out[:] = np.asarray(fill, dtype=np.float32)
    hwc = image.permute(1, 2, 0).numpy()
    if h > w:
        off = (side - w) // 2
        out[:h, off : off + w] = hwc
    elif w > h:
        off = (side - h) // 2
        out[off : off + h, :w] = hwc
    else:
        out[:] = hwc
    return out


def clip_process(square: np.ndarray, settings: ImageSettings) -> np.ndarray:
    """transformers 4.37 slow CLIPImageProcessor on a 0–1 float H×W×C image, no rescale/crop:
    ×255 and truncate to uint8, PIL resize, ÷255, normalize. Returns C×S×S float32."""
    as_uint8 = (square * np.float32(255)).astype(np.float32).astype(np.uint8)
    pil = Image.fromarray(as_uint8).resize((settings.size, settings.size), resample=settings.resample)
    resized = (np.asarray(pil) * (1 / 255)).astype(np.float32)
    mean = np.asarray(settings.image_mean, dtype=np.float32)
    std = np.asarray(settings.image_std, dtype=np.float32)
    return ((resized - mean) / std).transpose(2, 0, 1)


def preprocess_image(image: np.ndarray, settings: ImageSettings) -> torch.Tensor:
    """One camera frame (uint8 H×W×3 RGB) → CLIP pixel values (float32 3×S×S)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H×W×3 RGB image, got {image.dtype} {image.shape}")
    if not (2 <= image.shape[0] <= MAX_FRAME_SIDE and 2 <= image.shape[1] <= MAX_FRAME_SIDE):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}; sides must be 2 to {MAX_FRAME_SIDE} pixels")
    if not image.flags.writeable:  # camera frames are read-only views; torch wants writable memory
        image = image.copy()
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    if settings.crop_resize:
        x = center_crop_resize(x)
    square = expand_to_square(x, settings.image_mean)
    return torch.from_numpy(clip_process(square, settings))


def preprocess_cameras(images: list[np.ndarray], settings: ImageSettings) -> torch.Tensor:
    """Frames in the policy's camera order → [num_cameras, 3, S, S]."""
    return torch.stack([preprocess_image(img, settings) for img in images])
