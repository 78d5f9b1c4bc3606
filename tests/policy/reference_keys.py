"""Reads tests/fixtures/tinyvla_reference_keys.txt (hand-written from the reference sources) into
the exact keys, dtypes and shapes a TinyVLA output of a given config has."""

from __future__ import annotations

import ast
import operator
import re
from pathlib import Path

from edge.policy.config import PolicyConfig

TABLE = Path(__file__).resolve().parents[1] / "fixtures" / "tinyvla_reference_keys.txt"
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def symbols(cfg: PolicyConfig, lora_r: int) -> dict[str, int]:
    """The table's shape symbols for a config (see the table's header)."""
    v, lm, h = cfg.vision, cfg.language, cfg.head
    d0, d1, d2 = h.down_dims
    return {
        "H": lm.hidden_size, "I": lm.intermediate_size, "N": lm.vocab_size, "L": lm.num_hidden_layers,
        "V": v.hidden_size, "VI": v.intermediate_size, "VL": v.num_hidden_layers, "P": v.patch_size,
        "T": (v.image_size // v.patch_size) ** 2 + 1,
        "A": h.action_dim, "S": h.state_dim, "E": h.step_embed_dim, "K": h.kernel_size,
        "D0": d0, "D1": d1, "D2": d2, "R": lora_r,
    }


def _evaluate(expr: str, env: dict[str, int]) -> int:
    def walk(node):
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise ValueError(f"unsupported shape expression {expr!r}")

    return walk(ast.parse(expr.strip(), mode="eval").body)


def _expand(key: str, env: dict[str, int]) -> list[str]:
    ranges = {"l": env["L"], "v": env["VL"], "m": 2}
    keys = [key]
    for name, count in ranges.items():
        keys = [k.replace(f"{{{name}}}", str(i)) for k in keys for i in (range(count) if f"{{{name}}}" in k else [None])]
    return keys


def reference_keys(file: str, cfg: PolicyConfig, lora_r: int = 4) -> dict[str, tuple[str, tuple[int, ...] | None]]:
    """{key: (dtype, shape)} for one FILE section of the table (`target_modules`: shape None)."""
    env = symbols(cfg, lora_r)
    out: dict[str, tuple[str, tuple[int, ...] | None]] = {}
    for line in TABLE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        section, key, dtype, shape = re.match(r"(\S+)\s+(\S+)\s+(\S+)\s+(.+)$", line.strip()).groups()
        if section != file:
            continue
        dims = None if shape == "-" else tuple(_evaluate(d, env) for d in shape.strip("[]").split(","))
        for k in _expand(key, env):
            assert k not in out, f"duplicate table row {k}"
            out[k] = (dtype, dims)
    assert out, f"no {file} rows in {TABLE}"
    return out
