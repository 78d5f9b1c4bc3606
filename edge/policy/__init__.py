"""The TinyVLA policy as the runtime executes it: network, sampler, preprocessing, loading.

Names are imported on first use: the control process reads `edge.policy.actions` (numpy) and
`edge.policy.config` (pydantic) without loading torch, which only the model process needs."""

import importlib

_WHERE = {
    "ActionChunk": "edge.policy.actions",
    "DDIMSampler": "edge.policy.sampler",
    "HeadConfig": "edge.policy.config",
    "LanguageConfig": "edge.policy.config",
    "Policy": "edge.policy.policy",
    "PolicyConfig": "edge.policy.config",
    "VisionConfig": "edge.policy.config",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'edge.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
