"""tinyvla-edge: run TinyVLA policies on NVIDIA Jetson Orin."""

__version__ = "0.1.0"
