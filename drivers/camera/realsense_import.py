"""The one place pyrealsense2 is imported: its libusb comes with the `realsense` extra.

pyrealsense2's wheel links against `libusb-1.0.so.0` but does not ship it, and a fresh machine
has none. The `libusb-package` wheel (a dependency of the `realsense` extra) ships that library;
loading it with RTLD_GLOBAL before the import lets the dynamic linker resolve pyrealsense2's
dependency by soname, with no root and no system package. A libusb the system already provides
wins, so a distribution's (or JetPack's) own build is used where there is one.

Failures are told apart: "not installed" names the extra; "installed, but its shared library X
could not be loaded" names X and how to provide it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from dataclasses import dataclass
from types import ModuleType

from drivers.errors import DriverError

INSTALL_HINT = "pip install 'tinyvla-edge[realsense]'"
LIBUSB_SONAME = "libusb-1.0.so.0"
# How to provide each shared library pyrealsense2 needs and its wheel does not ship.
LIBRARY_FIXES = {
    "libusb-1.0": f"{INSTALL_HINT} (brings the libusb-package wheel) or sudo apt-get install libusb-1.0-0",
    "libudev": "sudo apt-get install libudev1 (part of systemd; present on every Jetson and desktop Linux)",
}


@dataclass(frozen=True)
class LibusbSource:
    """Which libusb pyrealsense2 resolves to: `origin` is system, libusb-package or missing."""

    origin: str
    path: str | None
    detail: str


class RealSenseImportError(DriverError):
    """pyrealsense2 cannot be imported: `what` failed, `fix` is the one-line remedy."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"{what}: {fix}")
        self.what, self.fix = what, fix


_loaded: LibusbSource | None = None


def _system_libusb() -> LibusbSource | None:
    try:
        ctypes.CDLL(LIBUSB_SONAME, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    found = ctypes.util.find_library("usb-1.0")
    return LibusbSource("system", found or LIBUSB_SONAME, f"the system's {found or LIBUSB_SONAME}")


def _packaged_libusb() -> LibusbSource:
    try:
        import libusb_package
    except ImportError:
        return LibusbSource("missing", None, "no system libusb and libusb-package is not installed")
    path = libusb_package.get_library_path()
    if path is None:
        return LibusbSource("missing", None, "libusb-package ships no libusb for this platform")
    try:
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        return LibusbSource("missing", None, f"libusb-package's {path} does not load: {e}")
    version = getattr(libusb_package, "__version__", "?")
    return LibusbSource("libusb-package", str(path), f"libusb-package {version}: {path}")


def load_libusb() -> LibusbSource:
    """Make libusb-1.0 loadable for pyrealsense2 (once per process): the system's, else the wheel's."""
    global _loaded
    if _loaded is None:
        _loaded = _system_libusb() or _packaged_libusb()
    return _loaded


def missing_library(error: ImportError) -> str | None:
    """The shared library an ImportError says could not be opened, e.g. 'libusb-1.0.so.0'."""
    match = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", str(error))
    return match.group(1) if match else None


def library_fix(library: str) -> str:
    """How to provide a shared library pyrealsense2 needs."""
    for prefix, fix in LIBRARY_FIXES.items():
        if library.startswith(prefix):
            return fix
    return f"install the system package that provides {library} (apt-file search {library})"


def import_pyrealsense2() -> ModuleType:
    """The pyrealsense2 module, with its libusb loaded first; otherwise a DriverError saying what failed."""
    libusb = load_libusb()
    try:
        import pyrealsense2 as rs
    except ModuleNotFoundError as e:
        if e.name != "pyrealsense2":
            raise RealSenseImportError(f"pyrealsense2 is installed, but its module {e.name} is missing",
                                       "pip install --force-reinstall pyrealsense2") from e
        raise RealSenseImportError("pyrealsense2 is not installed", INSTALL_HINT) from e
    except ImportError as e:
        library = missing_library(e)
        if library is None:
            raise RealSenseImportError(f"pyrealsense2 is installed, but does not import ({' '.join(str(e).split())})",
                                       "pip install --force-reinstall pyrealsense2") from e
        why = f" ({libusb.detail})" if library.startswith("libusb") and libusb.origin == "missing" else ""
        raise RealSenseImportError(f"pyrealsense2 is installed, but its shared library {library} could not be "
                                   f"loaded{why}", library_fix(library)) from e
    return rs
