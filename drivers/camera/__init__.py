"""Cameras: `Frame`, the `Camera` protocol, camera specs and `open_camera` (drivers.camera.base).

Backends (realsense, recording, synthetic) live in their own modules and are imported when a
camera is opened, so importing this package loads no vendor SDK.
"""

from drivers.camera.base import *  # noqa: F401,F403  (the package's public names: base.__all__)
from drivers.camera.base import __all__  # noqa: F401
