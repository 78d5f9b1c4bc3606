"""The TinyVLA policy as the runtime executes it: network, sampler, preprocessing, loading."""

from edge.policy.config import HeadConfig, LanguageConfig, PolicyConfig, VisionConfig
from edge.policy.policy import ActionChunk, Policy
from edge.policy.sampler import DDIMSampler

__all__ = [
    "ActionChunk",
    "DDIMSampler",
    "HeadConfig",
    "LanguageConfig",
    "Policy",
    "PolicyConfig",
    "VisionConfig",
]
