"""Device facts: what machine this is (`detect`), its power modes and clocks (`nvpmodel`),
and its power sensors (`power`, `tegrastats`).

Import the submodules directly (`from edge.device.detect import detect`); this package
imports nothing itself, so loading one part never drags in another.
"""
