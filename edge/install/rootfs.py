"""Paths on the target, inside the root tree that `install` reads and writes.

A staged root (`--root DIR`) is an image: its absolute symlinks (`/etc/nvpmodel.conf ->
/etc/nvpmodel/...`) mean paths inside the image, not on this machine. Following them as the host
would lets a link in the tree send a root-owned write anywhere on the host. So every path is
resolved here one component at a time, as a chroot would: an absolute link target starts again at
the root and `..` stops at the root. The result always lies under the root. On the device the
root is `/` and this is ordinary resolution.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.errors import EdgeError

MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


def inside_root(root: str | Path, device_path: str, *, follow_last: bool = False) -> Path:
    """`device_path` (absolute on the target) as a host path that never leaves `root`.

    Symlinks on the way are resolved inside the root. The last component is followed only with
    `follow_last` (reads): a write replaces a link there instead of writing through it.
    """
    base = Path(root)
    pending = _parts(device_path)
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = base.joinpath(*resolved, part)
        if candidate.is_symlink() and (pending or follow_last):
            links += 1
            if links > MAX_SYMLINKS:
                raise EdgeError(f"too many levels of symbolic links in {device_path} under {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = _parts(target) + pending
            continue
        resolved.append(part)
    return base.joinpath(*resolved)


def read_in_root(root: str | Path, device_path: str) -> str | None:
    """A file's text on the target, or None when absent or unreadable."""
    try:
        return inside_root(root, device_path, follow_last=True).read_text(errors="replace")
    except (OSError, EdgeError):
        return None


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]
