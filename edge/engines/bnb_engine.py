"""bitsandbytes LLM.int8 weights for the language model, for memory-bound targets.

On GPUs it is usually slower than fp16 (peers.md §10); it exists for models that do not fit.
"""

from __future__ import annotations

import torch

from edge.engines.table import require


def to_llm_int8(module: torch.nn.Module, component: str) -> torch.nn.Module:
    """Replace every nn.Linear with bitsandbytes' Linear8bitLt (weights quantized on .cuda())."""
    require("bitsandbytes", component)
    import bitsandbytes as bnb

    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.Linear):
            q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=child.bias is not None,
                                    has_fp16_weights=False, threshold=6.0)
            q.weight = bnb.nn.Int8Params(child.weight.data.to(torch.float16), requires_grad=False, has_fp16_weights=False)
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data.to(torch.float16), requires_grad=False)
            setattr(module, name, q)
        else:
            to_llm_int8(child, component)
    return module.cuda()
