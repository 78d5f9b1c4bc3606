"""Verification: every file of a bundle hashed through a descriptor that the loaders then read.

`open_verified` opens the bundle directory once and each listed file relative to it without
following symlinks (any symlink is refused), refuses anything but a regular file from its
`lstat` before opening it (a FIFO or device never blocks or is read), hashes it and keeps the
descriptor. `VerifiedBundle.read` returns a file's bytes from that same descriptor and checks
them against the manifest again, so what a loader gets is what was verified: a file renamed over
after verification is not seen (the descriptor holds the old one), and one rewritten in place is
refused. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from edge.bundle.manifest import ENGINE_CACHE, MANIFEST, MANIFEST_HASH, MAX_MANIFEST_BYTES, Manifest, parse_manifest
from edge.errors import BundleError

_BLOCK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


def sha256_file(path: Path) -> str:
    """sha256 of a file the toolkit itself wrote (the bundle writer); readers use `open_verified`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def content_files(directory: Path) -> list[str]:
    """Every entry of a bundle except the manifest files and a top-level `engine_cache/`, as sorted
    relative paths; symlinks and special files are listed (never followed) so that they are refused."""
    found = []

    def walk(path: str, rel: str) -> None:
        with os.scandir(path) as entries:
            for entry in entries:
                name = f"{rel}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    if name != ENGINE_CACHE:
                        walk(entry.path, name + "/")
                elif name not in (MANIFEST, MANIFEST_HASH):
                    found.append(name)

    walk(str(directory), "")
    return sorted(found)


def _open_inside(dir_fd: int, rel: str, where: Path) -> int:
    """A descriptor for regular file `rel` under `dir_fd`: no symlink in any segment, never a
    special file (checked before the open, confirmed after it)."""
    parts = rel.split("/")
    fds = [dir_fd]
    try:
        for part in parts[:-1]:
            if stat.S_ISLNK(os.stat(part, dir_fd=fds[-1], follow_symlinks=False).st_mode):
                raise BundleError(f"{where}: {rel} passes through a symlink ({part}; symlinks are refused)")
            fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=fds[-1]))
        info = os.stat(parts[-1], dir_fd=fds[-1], follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            kind = "a symlink (refused)" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            raise BundleError(f"{where}: {rel} is {kind}")
        fd = os.open(parts[-1], _OPEN_FLAGS, dir_fd=fds[-1])
    except FileNotFoundError:
        raise BundleError(f"{where}: missing file {rel}") from None
    except NotADirectoryError:
        raise BundleError(f"{where}: missing file {rel} (a parent is not a directory)") from None
    except OSError as e:  # ELOOP: a symlinked parent directory
        raise BundleError(f"{where}: cannot open {rel}: {e.strerror} (symlinks are refused)") from None
    finally:
        for fd_ in fds[1:]:
            os.close(fd_)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{where}: {rel} is not a regular file")
    return fd


def _read_fd(fd: int, limit: int | None = None) -> bytes:
    """The whole file behind `fd` from offset 0 (pread: the descriptor's position is not shared state)."""
    size = os.fstat(fd).st_size
    if limit is not None and size > limit:
        raise ValueError(f"larger than {limit} bytes")
    chunks, offset = [], 0
    while True:
        block = os.pread(fd, _BLOCK, offset)
        if not block:
            return b"".join(chunks)
        chunks.append(block)
        offset += len(block)
        if limit is not None and offset > limit:
            raise ValueError(f"larger than {limit} bytes")


def _hash_fd(fd: int) -> str:
    h, offset = hashlib.sha256(), 0
    while block := os.pread(fd, _BLOCK, offset):
        h.update(block)
        offset += len(block)
    return h.hexdigest()


class VerifiedBundle:
    """An open, verified bundle: its manifest and a descriptor per listed file. Close it (or use
    it as a context manager) once the loaders have read what they need."""

    def __init__(self, directory: Path, manifest: Manifest, fds: dict[str, int]):
        self.directory, self.manifest, self._fds = directory, manifest, fds

    def read(self, rel: str) -> bytes:
        """The verified bytes of listed file `rel`, re-checked against the manifest's sha256."""
        fd = self._fds.get(rel)
        if fd is None:
            raise BundleError(f"{self.directory}: {rel} is not a verified file of this bundle")
        data = _read_fd(fd)
        if hashlib.sha256(data).hexdigest() != self.manifest.files[rel]:
            raise BundleError(f"{self.directory}: {rel} changed after verification (modified while loading?)")
        return data

    def sha256(self, rel: str) -> str:
        """The verified sha256 of `rel` (engine caches are keyed by it)."""
        return self.manifest.files[rel]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __enter__(self) -> "VerifiedBundle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_small(dir_fd: int, rel: str, where: Path) -> bytes:
    fd = _open_inside(dir_fd, rel, where)
    try:
        return _read_fd(fd, MAX_MANIFEST_BYTES)
    except ValueError as e:
        raise BundleError(f"{where}: {rel} is {e}") from None
    finally:
        os.close(fd)


def _read_manifest(dir_fd: int, directory: Path) -> Manifest:
    """manifest.json, checked against manifest.sha256, parsed."""
    try:
        os.stat(MANIFEST, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise BundleError(f"{directory}: not a bundle (no {MANIFEST})") from None
    raw = _read_small(dir_fd, MANIFEST, directory)
    recorded = _read_small(dir_fd, MANIFEST_HASH, directory).decode("ascii", "replace").strip()
    if hashlib.sha256(raw).hexdigest() != recorded:
        raise BundleError(f"{directory}: hash mismatch in {MANIFEST} / {MANIFEST_HASH} (one was modified or corrupted)")
    return parse_manifest(raw, str(directory / MANIFEST))


def open_verified(directory: Path) -> VerifiedBundle:
    """Verify a bundle before anything is loaded: manifest hash, schema, every listed file's
    sha256, no unlisted file; returns the descriptors the loaders read from."""
    directory = Path(directory)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise BundleError(f"bundle not found: {directory}") from None
    fds: dict[str, int] = {}
    try:
        manifest = _read_manifest(dir_fd, directory)
        for rel, digest in manifest.files.items():
            fds[rel] = _open_inside(dir_fd, rel, directory)
            if _hash_fd(fds[rel]) != digest:
                raise BundleError(f"{directory}: hash mismatch in {rel} (modified or corrupted)")
        extra = sorted(set(content_files(directory)) - set(manifest.files))
        if extra:
            raise BundleError(f"{directory}: file not in the manifest: {extra[0]}")
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    finally:
        os.close(dir_fd)
    return VerifiedBundle(directory, manifest, fds)


def verify(directory: Path) -> Manifest:
    """Verify a bundle (see `open_verified`) and return its manifest."""
    with open_verified(directory) as bundle:
        return bundle.manifest
