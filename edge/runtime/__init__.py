"""The on-device runtime: a fixed-rate control loop fed by an inference worker, behind an
always-on safety layer (docs/runtime.md). Modules are imported where used; this package's
import loads no torch."""
