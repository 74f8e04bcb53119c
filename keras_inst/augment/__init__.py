"""Audio effects (paper §2.3): batched TensorFlow effects, the phase vocoder and their NumPy reference."""
