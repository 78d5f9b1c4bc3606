"""Hugging Face Hub ids as sources, offline-first (docs/hub.md).

Wherever the CLI takes a training output, a native policy, a base VLM or a bundle, it also takes
`org/repo[@revision][:subdir]`. The rule that tells the two apart:

1. an argument that names an existing file or directory is that local path, always;
2. otherwise, one of the shape `org/repo[@revision][:subdir]` (exactly one `/` before any `@` or
   `:`, each name letters, digits, `_`, `-`, `.`, starting and ending with a letter or digit)
   is a Hub id;
3. anything else is a local path (and its loader says it is not found).

A Hub id resolves through `huggingface_hub`'s cache first: when the cache holds every file the
source needs, no network is touched. With `HF_HUB_OFFLINE=1` the network is never touched; a
source whose files are not all cached is one line naming the missing files and the command that
fetches them. Bundles are copied out of the cache (whose snapshots are symlinks, which the bundle
reader refuses) into a plain directory and then verified by the same reader as a local bundle.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge.bundle.manifest import MANIFEST, MANIFEST_HASH, MAX_MANIFEST_BYTES, parse_manifest
from edge.errors import EdgeError, first_invalid_field

_NAME = r"[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?"
_HUB_ID = re.compile(
    rf"(?P<repo_id>{_NAME}/{_NAME})"
    r"(?:@(?P<revision>[\w.-]+(?:/[\w.-]+)*))?"  # branch, tag, commit or refs/pr/N
    r"(?::(?P<subdir>[\w.+ -]+(?:/[\w.+ -]+)*))?"
)
MAX_LISTED_MISSING = 5  # files named in a missing-files error; the rest are counted


class HubError(EdgeError):
    """A Hub id that cannot be resolved here (not cached, incomplete, unreachable, malformed)."""


@dataclass(frozen=True)
class HubRef:
    """A parsed `org/repo[@revision][:subdir]`."""

    repo_id: str
    revision: str | None = None
    subdir: str = ""

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "") + (f":{self.subdir}" if self.subdir else "")

    def fetch_command(self) -> str:
        """The one command that puts this source into the Hugging Face cache."""
        from huggingface_hub import constants

        offline = "HF_HUB_OFFLINE=0 " if constants.HF_HUB_OFFLINE else ""
        revision = f" --revision {self.revision}" if self.revision else ""
        include = f" --include '{self.subdir}/*'" if self.subdir else ""
        return f"{offline}hf download {self.repo_id}{revision}{include}"


def parse_hub_id(text: str) -> HubRef | None:
    """The Hub id `text` spells, or None when it is not of the shape `org/repo[@revision][:subdir]`."""
    match = _HUB_ID.fullmatch(str(text))
    if match is None:
        return None
    repo_id, revision, subdir = match.group("repo_id", "revision", "subdir")
    parts = [*repo_id.split("/"), *(revision or "").split("/"), *(subdir or "").split("/")]
    if any(p in (".", "..") or p.strip() != p for p in parts if p) or "--" in repo_id or ".." in repo_id:
        return None  # no segment may climb out of the cache or be a HF-invalid repo name
    return HubRef(repo_id, revision, subdir or "")


def check_source(path: str | Path, what: str) -> None:
    """Refuse, before anything heavy loads, a source that is neither a local path nor shaped like a
    Hub id (one that is, is resolved, and its files checked, by its loader)."""
    if not Path(path).exists() and parse_hub_id(str(path)) is None:
        raise EdgeError(f"{what} not found: {path}")


def resolve_path(arg: str | Path) -> Path:
    """A local directory for a CLI source argument: the path itself when it exists, else the
    Hub id's directory in the Hugging Face cache (a bundle: a verified-on-load plain copy)."""
    path = Path(arg)
    if path.exists():
        return path
    ref = parse_hub_id(str(arg))
    if ref is None:
        return path  # the loader reports "not found" in its own words
    return resolve_hub(ref)


def resolve_hub(ref: HubRef) -> Path:
    """The cached snapshot directory of `ref`, fetched only when files are missing and the
    network is allowed; a bundle comes back as a plain copy for the bundle reader."""
    from huggingface_hub import constants

    snapshot = _cached_snapshot(ref)
    missing = _missing_files(ref, snapshot) if snapshot else None
    if missing != []:
        if constants.HF_HUB_OFFLINE:
            raise _not_cached(ref, missing)
        snapshot = _download(ref)
        missing = _missing_files(ref, snapshot)
        if missing:
            raise _not_cached(ref, missing)
    source = snapshot / ref.subdir
    if (source / MANIFEST).is_file():
        return _plain_bundle_copy(ref, snapshot)
    return source


def _patterns(ref: HubRef) -> list[str] | None:
    return [f"{ref.subdir}/*"] if ref.subdir else None


def _cached_snapshot(ref: HubRef) -> Path | None:
    """The snapshot directory the cache holds for `ref`'s revision, without the network."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref.repo_id, revision=ref.revision, allow_patterns=_patterns(ref),
                                      local_files_only=True))
    except FileNotFoundError as e:  # LocalEntryNotFoundError; an incomplete snapshot still says where it is
        found = getattr(e, "snapshot_path", None)
        return Path(found) if found else None
    except ValueError as e:  # HFValidationError: a repo id the Hub would refuse
        raise HubError(f"{ref}: not a valid Hub id ({first_invalid_field(e)})") from None


def _download(ref: HubRef) -> Path:
    """Fetch what `ref` needs into the cache (the network is allowed here)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref.repo_id, revision=ref.revision, allow_patterns=_patterns(ref)))
    except FileNotFoundError as e:  # LocalEntryNotFoundError: the Hub is unreachable and the cache lacks it
        raise HubError(f"{ref}: not in the Hugging Face cache, and the Hub cannot be reached "
                       f"({first_invalid_field(e).removeprefix('Got: ')}); fetch with: {ref.fetch_command()}") from None
    except (OSError, ValueError) as e:  # HfHubHTTPError (not found, gated, unauthorized) is an OSError
        raise HubError(f"{ref}: cannot fetch from the Hugging Face Hub ({type(e).__name__}): "
                       f"{first_invalid_field(e)}") from None


def _missing_files(ref: HubRef, snapshot: Path) -> list[str]:
    """Files of `ref` known to exist on the Hub but not in the cached snapshot: those of the
    cached tree listing (huggingface_hub >= 2 keeps one per download) and, for a bundle, those
    its manifest lists. An absent `subdir` is missing as a whole."""
    source = snapshot / ref.subdir
    if not source.is_dir():
        return [f"{ref.subdir}/" if ref.subdir else "(the whole snapshot)"]
    expected = set(_tree_listing(ref, snapshot.name))
    if (source / MANIFEST).is_file():
        expected |= {f"{ref.subdir}/{rel}" if ref.subdir else rel for rel in [MANIFEST_HASH, *_manifest(source).files]}
    return sorted(rel for rel in expected if not (snapshot / rel).is_file())


def _tree_listing(ref: HubRef, commit: str) -> list[str]:
    import huggingface_hub

    listing = getattr(huggingface_hub, "get_cached_repo_tree", None)  # huggingface_hub >= 2
    if listing is None:
        return []
    try:
        files = [f.path for f in listing(ref.repo_id, revision=commit)]
    except Exception:  # CachedRepoTreeNotFoundError: a cache written without a listing
        return []
    return [f for f in files if not ref.subdir or f.startswith(ref.subdir + "/")]


def _manifest(directory: Path):
    """The bundle manifest in a cached snapshot, parsed (and its paths checked) before any copy."""
    with open(directory / MANIFEST, "rb") as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise HubError(f"{directory / MANIFEST}: larger than {MAX_MANIFEST_BYTES} bytes")
    return parse_manifest(raw, str(directory / MANIFEST))


def _not_cached(ref: HubRef, missing: list[str] | None) -> HubError:
    from huggingface_hub import constants

    mode = " (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else ""
    if missing is None:
        what = f"no local path '{ref}', and the Hub repo is not in the Hugging Face cache{mode}"
    else:
        named = ", ".join(missing[:MAX_LISTED_MISSING])
        more = f" and {len(missing) - MAX_LISTED_MISSING} more" if len(missing) > MAX_LISTED_MISSING else ""
        what = f"{len(missing)} file(s) missing from the Hugging Face cache{mode}: {named}{more}"
    return HubError(f"{ref}: {what}; fetch with: {ref.fetch_command()}")


def hub_bundle_cache() -> Path:
    """Where plain copies of Hub bundles live ($TINYVLA_EDGE_CACHE/hub, default ~/.cache/tinyvla-edge/hub)."""
    from edge.demo import cache_dir

    return cache_dir() / "hub"


def _plain_bundle_copy(ref: HubRef, snapshot: Path) -> Path:
    """The bundle of `ref` as a directory of plain files (hard links where possible), one per
    commit and subdir, built beside its final place and renamed in, so a copy that exists is
    complete. Only the manifest's files are copied (a model card README.md is not part of the
    bundle); every one must resolve into this repo's cache. The bundle reader verifies it later."""
    storage = snapshot.parent.parent.resolve()
    source = snapshot / ref.subdir
    target = hub_bundle_cache() / storage.name / snapshot.name / (ref.subdir.replace("/", "--") or "@root")
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for rel in [MANIFEST, MANIFEST_HASH, *_manifest(source).files]:
            blob = (source / rel).resolve()
            if not blob.is_relative_to(storage) or not blob.is_file():
                raise HubError(f"{ref}: cached file {rel} points outside the repo's cache ({blob})")
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(blob, staging / rel)
        os.rename(staging, target)
    except OSError as e:
        if not target.is_dir():  # another process may have renamed its copy in first
            raise HubError(f"{ref}: cannot copy the bundle to {target}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _link_or_copy(blob: Path, destination: Path) -> None:
    try:
        os.link(blob, destination)  # same file system: no second copy of the weights
    except OSError:
        shutil.copyfile(blob, destination)
