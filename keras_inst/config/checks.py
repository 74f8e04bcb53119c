"""Value checks shared by the config sections: each raises ValueError naming the config key."""

from __future__ import annotations

from collections.abc import Sequence


def check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ValueError(f"config key '{key}': {message}")


def check_range(value: Sequence[float], key: str, lo: float | None = None, hi: float | None = None) -> None:
    check(len(value) == 2 and value[0] <= value[1], key, f"must be [low, high] with low <= high, got {list(value)}")
    if lo is not None:
        check(value[0] >= lo, key, f"must be >= {lo}, got {list(value)}")
    if hi is not None:
        check(value[1] <= hi, key, f"must be <= {hi}, got {list(value)}")


def check_prob(value: float, key: str) -> None:
    check(0.0 <= value <= 1.0, key, f"must be a probability in [0, 1], got {value}")
