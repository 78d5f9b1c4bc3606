"""Quantization stage: training output -> verified edge bundle (heavy dependencies allowed)."""
