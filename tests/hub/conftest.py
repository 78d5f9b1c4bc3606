"""A Hugging Face cache written by hand (the real layout: models--org--repo/{blobs,snapshots/<sha>,refs/<name>})
and offline mode with no way to open a socket, so nothing here can reach the network."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import pytest

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def cache_repo(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = COMMIT_A,
               refs: tuple[str, ...] = ("main",), tree: list[str] | None = None) -> Path:
    """Put `files` (repo path → bytes) into `cache` as huggingface_hub lays out a download: content-addressed
    blobs, a snapshot of relative symlinks per commit, refs naming the commit; optionally a tree listing
    (huggingface_hub >= 2 writes trees/<commit>.json of every file of the commit)."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    for rel, data in files.items():
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = storage / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    for ref in refs:
        (storage / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)  # huggingface_hub writes the bare sha, no newline
    if tree is not None:
        listing = {"format_version": 1, "files": {rel: {"size": 1, "blob_id": "0" * 40} for rel in tree}}
        (storage / "trees").mkdir(exist_ok=True)
        (storage / "trees" / f"{commit}.json").write_text(json.dumps(listing))
    return storage


def directory_files(directory: Path, prefix: str = "") -> dict[str, bytes]:
    """Every file under `directory` as repo path → bytes."""
    return {prefix + p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(Path(directory).rglob("*")) if p.is_file()}


@pytest.fixture()
def hf_cache(tmp_path, monkeypatch):
    """An empty HF cache at HF_HUB_CACHE, HF_HUB_OFFLINE=1, plain bundle copies under tmp, sockets refused."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TINYVLA_EDGE_CACHE", str(tmp_path / "tinyvla-cache"))
    # huggingface_hub reads both variables once, at import: set what it already read as well.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return cache
