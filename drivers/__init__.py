"""Hardware drivers: cameras produce Frames, arms take targets. Never imports torch or edge."""
