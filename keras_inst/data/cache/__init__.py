"""The stem cache: stems decoded once, mono, resampled, int16 memory-mapped with activity envelopes."""
