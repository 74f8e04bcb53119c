"""The synthesised drum machine, measured: kick pitch sweep, hat and cymbal decay times, the open
hat's choke, velocity response, every GM key it plays, levels and determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from keras_inst.corpus import drum_machine as D
from keras_inst.corpus.drums import CRASH, HAT_CLOSED, HAT_OPEN, KICK, SNARE, drum_part

SR = 16000


def _hit(kit: D.DrumKit, key: int, vel: int = 127, n: float = 3.0) -> np.ndarray:
    return D.render_hits(kit, [(0.0, 0.1, key, vel)], sample_rate=SR, n_samples=int(n * SR),
                         rng=np.random.default_rng(0)).astype(np.float64)


def _crossing_hz(x: np.ndarray) -> float:
    """Mean frequency from upward zero crossings (a sine-like segment)."""
    up = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    return float(SR * (len(up) - 1) / (up[-1] - up[0]))


@pytest.mark.parametrize("seed", range(4))
def test_kick_pitch_falls_to_the_kit_tuning(seed):
    kit = replace(D.draw_kit(np.random.default_rng(seed)), kick_click=0.0)
    x = _hit(kit, KICK, n=1.0)
    first = np.nonzero((x[1:-1] < 0) & (x[2:] >= 0))[0][0] + 2  # end of the first cycle
    early = SR / first
    late = _crossing_hz(x[int(0.15 * SR) : int(0.4 * SR)])
    assert early > 1.3 * late
    assert late == pytest.approx(kit.kick_hz, rel=0.05)


def _t60_s(x: np.ndarray) -> float:
    """60 dB decay time from a line fitted to the dB envelope (2 ms frames) from its peak down
    to -40 dB: beating squares and noise make single frames jump by +-3 dB."""
    win = SR // 500
    e = 10 * np.log10(np.mean(x[: len(x) // win * win].reshape(-1, win) ** 2, axis=1) + 1e-20)
    p = int(np.argmax(e))
    end = p + int(np.argmax(e[p:] < e[p] - 40))
    slope = np.polyfit(np.arange(p, end) * win / SR, e[p:end], 1)[0]  # dB per second
    return -60.0 / slope


@pytest.mark.parametrize("seed", range(3))
def test_hats_and_cymbals_decay_in_their_set_times(seed):
    kit = D.draw_kit(np.random.default_rng(seed))
    for key, decay in ((HAT_CLOSED, kit.closed_s), (HAT_OPEN, kit.open_s), (CRASH, kit.crash_s)):
        x = _hit(kit, key)
        assert _t60_s(x) == pytest.approx(decay, rel=0.15), key
        assert np.max(np.abs(x[int((decay + 0.02) * SR) :])) < 2e-3 * np.max(np.abs(x))  # gone after T
    assert kit.closed_s < kit.open_s < kit.crash_s


def test_open_hat_is_choked_by_the_next_closed_hat():
    kit = D.draw_kit(np.random.default_rng(1))
    ring = D.render_hits(kit, [(0.0, 0.1, HAT_OPEN, 110)], sample_rate=SR, n_samples=SR, rng=np.random.default_rng(0))
    choked = D.render_hits(kit, [(0.0, 0.1, HAT_OPEN, 110), (0.1, 0.1, HAT_CLOSED, 1)], sample_rate=SR, n_samples=SR,
                           rng=np.random.default_rng(0))
    tail = slice(int(0.106 * SR), int(0.1 * SR + kit.closed_s * SR * 0.2))  # after the 5 ms fade
    assert np.sqrt(np.mean(choked[tail] ** 2)) < 0.1 * np.sqrt(np.mean(ring[tail] ** 2))
    assert np.array_equal(choked[: int(0.1 * SR)], ring[: int(0.1 * SR)])


def test_every_kit_key_sounds_and_others_are_silent():
    kit = D.draw_kit(np.random.default_rng(2))
    assert {35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 54, 70} <= D.KIT_KEYS
    for key in sorted(D.KIT_KEYS):
        x = _hit(kit, key, n=0.5)
        assert np.all(np.isfinite(x)) and 1e-3 < np.max(np.abs(x)) <= 1.0, key
    assert np.max(np.abs(_hit(kit, 81, n=0.5))) == 0.0  # open triangle: not in the kit


@pytest.mark.parametrize("key", [KICK, SNARE, 39, HAT_CLOSED, 45, 56])
def test_velocity_response_is_monotonic_with_the_kits_curve(key):
    kit = D.draw_kit(np.random.default_rng(3))
    rms = [float(np.sqrt(np.mean(_hit(kit, key, vel=v, n=0.5) ** 2))) for v in (20, 64, 100, 127)]
    assert all(b > a for a, b in zip(rms, rms[1:], strict=False))
    # amplitude ~ (velocity / 127) ** curve, curve 1.0-2.0: 127 vs 64 is 6-12 dB
    diff = 20 * np.log10(rms[3] / rms[1])
    assert diff == pytest.approx(20 * np.log10(127 / 64) * kit.velocity_curve, abs=0.01) and 5.9 < diff < 12.0


def test_grooves_render_in_range_and_deterministically():
    rng = np.random.default_rng(0)
    hits = drum_part("dance", start_q=0.0, n_bars=4, bar_q=4.0, beat_q=1.0, rng=rng)
    notes = [(on * 0.5, d * 0.5, k, v) for on, d, k, v in hits]  # 120 bpm
    a, name = D.play_drum_machine(notes, sample_rate=SR, n_samples=9 * SR, seed=5)
    b, _ = D.play_drum_machine(notes, sample_rate=SR, n_samples=9 * SR, seed=5)
    c, _ = D.play_drum_machine(notes, sample_rate=SR, n_samples=9 * SR, seed=6)
    assert a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert name.startswith("drum machine ") and np.max(np.abs(a)) <= 1.0 and np.sqrt(np.mean(a**2)) > 0.01
    kits = {D.draw_kit(np.random.default_rng(s)) for s in range(30)}
    assert len(kits) == 30 and {k.style for k in kits} == {"808", "909"}
    long = [k.kick_decay_s for k in kits if k.style == "808"]
    short = [k.kick_decay_s for k in kits if k.style == "909"]
    assert min(long) > max(short)  # the 808 boom against the 909 thump
    gained, _ = D.play_drum_machine(notes, sample_rate=SR, n_samples=9 * SR, seed=5, key_gains=((KICK, -6.0),))
    kick_only = [n for n in notes if n[2] == KICK]
    ka, _ = D.play_drum_machine(kick_only, sample_rate=SR, n_samples=9 * SR, seed=5)
    kg, _ = D.play_drum_machine(kick_only, sample_rate=SR, n_samples=9 * SR, seed=5, key_gains=((KICK, -6.0),))
    assert 20 * np.log10(np.std(kg) / np.std(ka)) == pytest.approx(-6.0, abs=0.01) and not np.array_equal(gained, a)
