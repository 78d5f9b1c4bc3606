"""manifest.json: the bundle's schema, parsed without torch.

Every file reference (component and head `file`, every key of `files`) is a relative POSIX path
inside the bundle with no `..`, `.` or empty segment, never absolute, never one of the manifest
files or under the device's `engine_cache/`; `file` fields must also be listed in the hashed
`files`. A manifest that breaks any of this is refused in one line before any file is opened.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.engines.table import ENGINES, ONNX, engine_name, file_kind, head_engine
from edge.errors import BundleError, first_invalid_field

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
ENGINE_CACHE = "engine_cache"  # written by older toolkits inside bundles; never read, never hashed
TOKENIZER = "tokenizer.json"
BACKBONE_WEIGHTS = "backbone.safetensors"
HEAD_WEIGHTS = "head.safetensors"
MAX_MANIFEST_BYTES = 16 << 20  # a TinyVLA-H manifest is about 100 kB (the sampler's numbers, stats)
# The suffix budget and the fixed prefix are a few dozen tokens in practice; the language model's
# positions (Pythia: 2048) bound prefix + image tokens + suffix anyway.
MAX_PROMPT_TOKENS = 1024
MAX_SAMPLER_STEPS = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SEGMENT = re.compile(r"[A-Za-z0-9_.+-]+")


def check_bundle_path(rel: str) -> str:
    """`rel` if it names a file inside a bundle, else ValueError saying why."""
    if not rel or rel.startswith("/") or "\\" in rel:
        raise ValueError(f"'{rel[:80]}' is not a relative POSIX path inside the bundle")
    parts = rel.split("/")
    if any(p in ("", ".", "..") or not _SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(f"'{rel[:80]}' has an empty, '.', '..' or unusual segment (letters, digits, _ . + - only)")
    if rel in (MANIFEST, MANIFEST_HASH) or parts[0] == ENGINE_CACHE:
        raise ValueError(f"'{rel[:80]}' is reserved ({MANIFEST}, {MANIFEST_HASH}, {ENGINE_CACHE}/)")
    return rel


def _check_sha256(digest: str) -> str:
    if not _SHA256.fullmatch(digest):
        raise ValueError("not a lowercase hex sha256")
    return digest


BundlePath = Annotated[str, AfterValidator(check_bundle_path)]
Sha256 = Annotated[str, AfterValidator(_check_sha256)]


class ComponentEntry(BaseModel):
    """One component: which engine runs it, at which precision, from which file."""

    model_config = ConfigDict(extra="forbid")

    engine: str  # a name of edge.engines.table.ENGINES; older names are mapped (below)
    precision: Literal["fp32", "fp16", "bf16", "int8"]
    file: BundlePath
    input_shapes: dict[str, list[int]] = {}
    quantization: dict | None = None
    export: dict | None = None  # how an ONNX file was exported (opset, attention form)

    @model_validator(mode="after")
    def _engine_runs_file(self) -> "ComponentEntry":
        """Map an older engine name by the file it runs (`LEGACY_ENGINES`: `onnxruntime` →
        onnxruntime-cpu, `tensorrt` → onnxruntime-trt for .onnx files, torch-tensorrt for
        safetensors) and refuse an engine that does not run this file kind or precision."""
        self.engine = engine_name(self.engine, file_kind(self.file))
        if self.precision not in ENGINES[self.engine].precisions:
            raise ValueError(f"engine {self.engine} does not run {self.precision} "
                             f"(runs: {', '.join(sorted(ENGINES[self.engine].precisions))})")
        return self


class PromptEntry(BaseModel):
    """The prompt's fixed prefix ids and the padded suffix budget."""

    model_config = ConfigDict(extra="forbid")

    prefix_ids: list[int] = Field(min_length=1, max_length=MAX_PROMPT_TOKENS)
    max_prompt_tokens: int = Field(ge=1, le=MAX_PROMPT_TOKENS)
    pad_token_id: int
    template: str = ""


class SamplerEntry(BaseModel):
    """The head's DDIM schedule; the numbers beyond `timesteps` are recorded for people."""

    model_config = ConfigDict(extra="allow")

    timesteps: list[int] = Field(min_length=1, max_length=MAX_SAMPLER_STEPS)


class HeadEntry(BaseModel):
    """The diffusion head and how it is sampled."""

    model_config = ConfigDict(extra="forbid")

    file: BundlePath  # torch weights: condition front-end, step embedding, fp32 network
    engine: str = "torch"  # with precision, a row of edge.engines.table.HEAD_ENGINES
    precision: Literal["fp32", "fp16", "bf16", "int8"] = "fp32"
    network_file: BundlePath | None = None  # the noise-prediction network, for ONNX head engines
    steps: int
    teacher_steps: int
    distilled: bool
    method: str | None = None
    sampler: SamplerEntry
    export: dict | None = None
    quantization: dict | None = None
    fidelity: dict | None = None  # this head's chunk vs the fp32 head (same condition and noise)

    @model_validator(mode="after")
    def _engine_runs_head(self) -> "HeadEntry":
        """A head engine of the table at this precision, with its network file when it needs one."""
        row = head_engine(self.engine, self.precision)
        self.engine = row.engine
        if (row.file_kind == ONNX) != (self.network_file is not None):
            raise ValueError(f"engine {row.engine} {row.precision} " + (
                "needs a network_file (.onnx)" if row.file_kind == ONNX else "takes no network_file"))
        if self.network_file is not None and file_kind(self.network_file) != ONNX:
            raise ValueError(f"network_file '{self.network_file[:80]}' is not an .onnx file")
        return self


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
    prompt: PromptEntry
    components: dict[Literal["vision", "language"], ComponentEntry]
    head: HeadEntry
    fidelity: dict = {}
    files: dict[BundlePath, Sha256]  # relative path → sha256

    @model_validator(mode="after")
    def _files_are_hashed(self) -> "Manifest":
        """Every file a loader opens is in the hashed set."""
        named = {f"components.{k}.file": c.file for k, c in self.components.items()} | {"head.file": self.head.file}
        if self.head.network_file is not None:
            named["head.network_file"] = self.head.network_file
        for where, rel in named.items():
            if rel not in self.files:
                raise ValueError(f"{where} '{rel}' is not in the hashed files list")
        if set(self.components) != {"vision", "language"}:
            raise ValueError("components must be vision and language")
        return self


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999 parses to inf
        raise ValueError(f"{text[:40]} is out of range")
    return value


def parse_manifest(raw: bytes, where: str) -> Manifest:
    """manifest.json bytes → Manifest, or one-line BundleError naming the field."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BundleError(f"{where}: not valid JSON: {str(e).splitlines()[0][:200]}") from e
    if not isinstance(data, dict):
        raise BundleError(f"{where}: must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{where}: unknown schema version {str(version)[:20]} (this toolkit reads {SCHEMA_VERSION}; upgrade tinyvla-edge)")
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        raise BundleError(f"{where}: {first_invalid_field(e)}") from e


def bundle_facts(manifest: Manifest) -> dict:
    """What `inspect` prints for a bundle."""
    return {
        "profile": manifest.profile,
        "created_at": manifest.created_at,
        "toolkit_version": manifest.toolkit_version,
        "source_fingerprint": manifest.source.get("fingerprint"),
        "camera_names": manifest.camera_names,
        "max_prompt_tokens": manifest.prompt.max_prompt_tokens,
        "components": {k: v.model_dump(exclude={"quantization", "export"}) for k, v in manifest.components.items()},
        "head_engine": {"engine": manifest.head.engine, "precision": manifest.head.precision,
                        "fidelity": manifest.head.fidelity},
        "head_sampling": {"steps": manifest.head.steps, "teacher_steps": manifest.head.teacher_steps,
                          "distilled": manifest.head.distilled, "method": manifest.head.method,
                          "timesteps": manifest.head.sampler.timesteps},
        "fidelity": manifest.fidelity,
        "files": len(manifest.files),
    }
