"""The simulated arm: the protocol v1 firmware emulator (firmware), its fault injection (faults)
and the pseudo-terminal that serves it (sim_arm)."""
