"""`tinyvla-edge push BUNDLE org/repo[@branch][:subdir]`: upload a verified bundle to the Hub.

The bundle is verified by the bundle reader first; one that does not verify is refused before
anything is sent. The upload is one commit: exactly the files the manifest lists plus the two
manifest files, and the bundle's `report.md` as the model card (`README.md`, beside the bundle).
Pulling it back (`inspect org/repo`, `run org/repo`, ...) goes through `edge.hub` and the same
verification as a local bundle.
"""

from __future__ import annotations

from pathlib import Path

from edge import __version__
from edge.bundle.manifest import MANIFEST, MANIFEST_HASH, Manifest
from edge.bundle.verify import verify
from edge.errors import first_invalid_field
from edge.hub import HubError, HubRef, parse_hub_id

REPORT = "report.md"
MODEL_CARD = "README.md"


def model_card(report: str, manifest: Manifest) -> str:
    """The Hub model card: metadata the Hub indexes, then the bundle's fidelity report."""
    header = "\n".join([
        "---",
        "library_name: tinyvla-edge",
        "pipeline_tag: robotics",
        f"tags: [robotics, tinyvla, tinyvla-edge, {manifest.profile}]",
        "---",
        "",
    ])
    return f"{header}{report.rstrip()}\n\nPull and run it with `tinyvla-edge run <this repo id> ...` (docs/hub.md).\n"


def push_bundle(bundle: Path, target: str, private: bool = False, api=None) -> dict:
    """Verify `bundle`, then upload it and its model card to Hub repo `target` in one commit.
    `api` is a `huggingface_hub.HfApi` (default: one with the saved token)."""
    ref = parse_hub_id(target)
    if ref is None:
        raise HubError(f"'{target}' is not a Hub repo id (org/repo[@branch][:subdir])")
    bundle = Path(bundle)
    manifest = verify(bundle)  # refuses a bundle that does not verify, before any network call
    if REPORT not in manifest.files:
        raise HubError(f"{bundle}: has no {REPORT} to serve as the model card (bundles from `tinyvla-edge quantize` have one)")
    files = [MANIFEST, MANIFEST_HASH, *manifest.files]
    card = model_card((bundle / REPORT).read_text(encoding="utf-8"), manifest)
    if api is None:
        api = _default_api()
    message = f"tinyvla-edge {__version__}: bundle for profile {manifest.profile}"
    commit = _upload(api, ref, bundle, files, card, private, message)
    in_repo = lambda rel: f"{ref.subdir}/{rel}" if ref.subdir else rel  # noqa: E731
    return {"repo_id": ref.repo_id, "revision": ref.revision or "main", "subdir": ref.subdir,
            "files": [in_repo(f) for f in [*files, MODEL_CARD]], "commit": getattr(commit, "oid", None),
            "url": getattr(commit, "commit_url", None), "pull": str(ref)}


def _default_api():
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise HubError("push needs the network, and HF_HUB_OFFLINE=1 is set")
    return HfApi(library_name="tinyvla-edge", library_version=__version__)


def _upload(api, ref: HubRef, bundle: Path, files: list[str], card: str, private: bool, message: str):
    from huggingface_hub import CommitOperationAdd

    prefix = f"{ref.subdir}/" if ref.subdir else ""
    operations = [CommitOperationAdd(path_in_repo=prefix + rel, path_or_fileobj=str(bundle / rel)) for rel in files]
    operations.append(CommitOperationAdd(path_in_repo=prefix + MODEL_CARD, path_or_fileobj=card.encode("utf-8")))
    try:
        api.create_repo(ref.repo_id, repo_type="model", private=private, exist_ok=True)
        if ref.revision:
            api.create_branch(ref.repo_id, branch=ref.revision, exist_ok=True)
        return api.create_commit(ref.repo_id, operations=operations, revision=ref.revision, commit_message=message)
    except (OSError, ValueError) as e:  # HfHubHTTPError is an OSError
        raise HubError(f"push to {ref}: {first_invalid_field(e)}") from None


def render_push(result: dict) -> str:
    """Human-readable summary of `push_bundle`'s result."""
    lines = [f"pushed {len(result['files'])} files to {result['repo_id']} ({result['revision']}"
             f"{', ' + result['subdir'] if result['subdir'] else ''})"]
    if result["url"]:
        lines.append(f"  commit  {result['url']}")
    lines.append(f"  pull    tinyvla-edge inspect {result['pull']}")
    return "\n".join(lines)
