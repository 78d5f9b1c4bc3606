"""Read-only views of system state, from files under a root directory.

Paths are resolved inside the root (edge/install/rootfs.py). Every install check reads files rather than asking tools (`dpkg -s`, `id`, `systemctl is-enabled`),
so the same check works on the device and on a staged tree, and a check can never change anything.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from edge.install.rootfs import inside_root, read_in_root


def installed_packages(root: str | Path) -> dict[str, str]:
    """Debian packages whose dpkg Status is "install ok installed", name -> version."""
    text = read_in_root(root, "/var/lib/dpkg/status") or ""
    packages: dict[str, str] = {}
    for block in text.split("\n\n"):
        name = re.search(r"^Package: (\S+)$", block, re.M)
        status = re.search(r"^Status: (.+)$", block, re.M)
        version = re.search(r"^Version: (\S+)$", block, re.M)
        if name and status and status.group(1).strip().endswith(" installed"):
            packages[name.group(1)] = version.group(1) if version else ""
    return packages


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str


def users(root: str | Path) -> dict[str, User]:
    """Accounts from /etc/passwd."""
    result: dict[str, User] = {}
    for line in (read_in_root(root, "/etc/passwd") or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 7 and parts[2].isdigit():
            result[parts[0]] = User(parts[0], int(parts[2]), int(parts[3]), parts[5])
    return result


def group_members(root: str | Path) -> dict[str, list[str]]:
    """Groups from /etc/group, name -> supplementary members."""
    result: dict[str, list[str]] = {}
    for line in (read_in_root(root, "/etc/group") or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 4:
            result[parts[0]] = [m for m in parts[3].split(",") if m]
    return result


def group_name(root: str | Path, gid: int) -> str | None:
    for line in (read_in_root(root, "/etc/group") or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2] == str(gid):
            return parts[0]
    return None


def unit_enabled(root: str | Path, unit: str, target: str = "multi-user.target") -> bool:
    """Whether `systemctl enable` linked `unit` into `target`'s wants (in /etc or /lib)."""
    for base in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"):
        link = inside_root(root, f"{base}/{target}.wants/{unit}")
        if link.is_symlink() or link.exists():
            return True
    return False


def unit_exists(root: str | Path, unit: str) -> bool:
    return any(inside_root(root, f"{base}/{unit}", follow_last=True).exists()
               for base in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"))


@dataclass(frozen=True)
class SwapArea:
    name: str
    kind: str
    size_mb: int

    @property
    def is_zram(self) -> bool:
        return self.name.startswith("/dev/zram")


def swap_areas(root: str | Path) -> list[SwapArea]:
    """Active swap from /proc/swaps."""
    areas = []
    for line in (read_in_root(root, "/proc/swaps") or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2].isdigit():
            areas.append(SwapArea(parts[0], parts[1], int(parts[2]) // 1024))
    return areas


def site_packages(venv: str, python: str) -> str:
    """The venv's site-packages path on the device."""
    return f"{venv.rstrip('/')}/lib/python{python}/site-packages"


def dist_version(root: str | Path, site: str, dist: str) -> str | None:
    """The installed version of distribution `dist` in `site`, from its .dist-info directory."""
    normalized = re.sub(r"[-_.]+", "_", dist).lower()
    for path in glob.glob(str(inside_root(root, site, follow_last=True)) + "/*.dist-info"):
        name, _, version = Path(path).name[: -len(".dist-info")].rpartition("-")
        if re.sub(r"[-_.]+", "_", name).lower() == normalized:
            return version
    return None


def pyvenv_cfg(root: str | Path, venv: str) -> dict[str, str] | None:
    """The venv's pyvenv.cfg as a dict, or None when there is no venv there."""
    text = read_in_root(root, f"{venv.rstrip('/')}/pyvenv.cfg")
    if text is None:
        return None
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def kernel_config(root: str | Path, kernel: str | None) -> str | None:
    """The running kernel's build config (/boot/config-<release>), when the image has it."""
    return read_in_root(root, f"/boot/config-{kernel}") if kernel else None
