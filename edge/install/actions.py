"""The two things an install step can do: change a file, or run a command.

Both are plain values, so a plan can be printed (`--dry-run`), recorded (`--root`), or applied,
and tests can compare plans without running anything.
"""

from __future__ import annotations

import difflib
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edge.install.rootfs import inside_root, read_in_root


@dataclass(frozen=True)
class FileChange:
    """Make `path` (absolute on the device) hold `content`, or delete it when content is None."""

    path: str
    content: str | None
    old: str | None  # what is there now (None: absent)
    mode: int = 0o644
    why: str = ""

    @property
    def action(self) -> str:
        if self.content is None:
            return "delete"
        return "create" if self.old is None else "update"

    def diff(self) -> str:
        """A unified diff for updates and deletes; the full content for new files."""
        if self.action == "create":
            return self.content or ""
        return "".join(difflib.unified_diff(
            (self.old or "").splitlines(keepends=True),
            (self.content or "").splitlines(keepends=True),
            fromfile=f"{self.path} (now)", tofile=f"{self.path} (planned)" if self.content is not None else "/dev/null",
        ))

    def to_dict(self) -> dict:
        return {"path": self.path, "action": self.action, "mode": oct(self.mode), "why": self.why,
                "content": self.content, "diff": self.diff()}


@dataclass(frozen=True)
class Command:
    """A command to run as root, or as `as_user` (via runuser), with stdin closed."""

    argv: tuple[str, ...]
    why: str = ""
    as_user: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 3600.0
    fix: str = ""  # what to do when it fails

    def full_argv(self) -> list[str]:
        argv = list(self.argv)
        if self.env:
            argv = ["env", *(f"{k}={v}" for k, v in self.env), *argv]
        if self.as_user:
            argv = ["runuser", "-u", self.as_user, "--", *argv]
        return argv

    def shell(self) -> str:
        """The exact shell line, as printed by --dry-run and written to the staged command file."""
        return shlex.join(self.full_argv())

    def to_dict(self) -> dict:
        return {"command": self.shell(), "why": self.why}


def cmd(*argv: str, why: str = "", as_user: str | None = None, env: dict[str, str] | None = None,
        timeout_s: float = 3600.0, fix: str = "") -> Command:
    """Shorthand for Command with argv given as arguments."""
    return Command(tuple(argv), why, as_user, tuple((env or {}).items()), timeout_s, fix)


def atomic_write(path: Path, content: str, mode: int = 0o644) -> None:
    """Write `content` to `path` so that readers see the old file or the new one, never half.

    The temporary file lives in the same directory (rename is atomic only within a filesystem),
    is fsynced before the rename, and is removed if anything fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply_file_change(root: str | Path, change: FileChange) -> None:
    """Apply one FileChange under `root` (symlinks in the tree never lead the write out of it)."""
    target = inside_root(root, change.path)
    if change.content is None:
        target.unlink(missing_ok=True)
    else:
        atomic_write(target, change.content, change.mode)


@dataclass
class StagedCommandFile:
    """The script of commands a `--root` run recorded instead of running, to run on the target.

    Kept inside the staged tree (so an image carries it) and read back so that a second run
    recognises commands it already recorded: staging is idempotent like a real install.
    """

    root: Path
    relpath: str = "/var/lib/tinyvla-edge/staged-commands.sh"
    lines: list[str] = field(default_factory=list)

    HEADER = (
        "#!/bin/sh\n"
        "# Commands `tinyvla-edge install --root` recorded instead of running them.\n"
        "# Run once on the target as root, in order (e.g. at first boot). Stdin is closed so that\n"
        "# nvpmodel's reboot prompt cannot block.\n"
        "set -e\n"
        "exec </dev/null\n"
    )

    @property
    def path(self) -> Path:
        return inside_root(self.root, self.relpath)

    def load(self) -> "StagedCommandFile":
        text = read_in_root(self.root, self.relpath)
        if text is None:
            return self
        self.lines = [line for line in text.splitlines()[len(self.HEADER.splitlines()):]]
        return self

    def recorded(self, step: str) -> set[str]:
        """Commands recorded under `step` (the same command in two steps is two entries: e.g.
        ldconfig after a pip install and again after a source build's make install)."""
        found: set[str] = set()
        current = None
        for line in self.lines:
            if line.startswith("# step: "):
                current = line[len("# step: "):]
            elif line and not line.startswith("#") and current == step:
                found.add(line)
        return found

    def add(self, step: str, commands: list[Command]) -> None:
        new = [c.shell() for c in commands if c.shell() not in self.recorded(step)]
        if new:
            self.lines += [f"# step: {step}", *new]

    def render(self) -> str:
        return self.HEADER + "".join(f"{line}\n" for line in self.lines)

    def save(self) -> None:
        atomic_write(self.path, self.render(), 0o755)
