"""SoundFont synthesis and BS.1770 loudness: golden loudness values, note placement, preset levels."""

from __future__ import annotations

import numpy as np
import pytest

from keras_inst.corpus.drums import KICK
from keras_inst.corpus.synth import default_soundfont, integrated_loudness, synthesize

SR = 16000


def test_integrated_loudness_golden_values():
    t = np.arange(10 * SR) / SR
    tone = np.sin(2 * np.pi * 997 * t)
    # BS.1770: a full-scale 997 Hz sine reads -3.01 LKFS (at 48 kHz exactly; 16 kHz within 0.05)
    assert integrated_loudness(tone, SR) == pytest.approx(-3.01, abs=0.05)
    t48 = np.arange(5 * 48000) / 48000
    assert integrated_loudness(np.sin(2 * np.pi * 997 * t48), 48000) == pytest.approx(-3.01, abs=0.005)
    assert integrated_loudness(0.1 * tone, SR) == pytest.approx(-23.01, abs=0.05)
    # the gates ignore silence: the same tone followed by 10 s of silence reads the same
    gated = np.concatenate([0.1 * tone, np.zeros(10 * SR)])
    assert integrated_loudness(gated, SR) == pytest.approx(-23.01, abs=0.15)
    assert integrated_loudness(np.zeros(SR), SR) == float("-inf")


def test_synthesize_places_notes_and_shows_program_levels_differ():
    n = 2 * SR
    piano, preset = synthesize([(0.5, 1.0, 60, 100)], program=0, soundfont=default_soundfont(), sample_rate=SR, n_samples=n)
    assert piano.shape == (n,) and piano.dtype == np.float32 and preset
    assert np.max(np.abs(piano[: int(0.49 * SR)])) < 1e-4  # silent before the onset
    assert np.sqrt(np.mean(piano[int(0.5 * SR) : int(0.6 * SR)] ** 2)) > 1e-3
    pad, _ = synthesize([(0.5, 1.0, 60, 100)], program=89, soundfont=default_soundfont(), sample_rate=SR, n_samples=n)
    # why stems are normalised: TimGM6mb's piano is far quieter than its pad at one velocity
    assert integrated_loudness(pad, SR) - integrated_loudness(piano, SR) > 6.0
    drums, _ = synthesize([(0.0, 0.2, KICK, 110)], program=128, soundfont=default_soundfont(), sample_rate=SR, n_samples=n)
    assert np.max(np.abs(drums)) > 0.01


def test_cached_synth_leaves_no_state_and_velocity_bands_scale():
    from keras_inst.corpus.synth import _synth

    sf2 = str(default_soundfont())
    notes = [(0.05, 0.5, 60, 100), (0.6, 0.5, 64, 50)]
    _synth.cache_clear()
    fresh, _ = synthesize(notes, program=0, soundfont=sf2, sample_rate=SR, n_samples=SR + SR // 4)
    synthesize(notes, program=0, soundfont=sf2, sample_rate=SR, n_samples=SR // 2)  # cut off mid-note
    synthesize([(0.0, 0.2, KICK, 110)], program=128, soundfont=sf2, sample_rate=SR, n_samples=SR // 10)
    again, _ = synthesize(notes, program=0, soundfont=sf2, sample_rate=SR, n_samples=SR + SR // 4)
    assert np.array_equal(fresh, again)  # sounds_off's 10 ms fade is rendered away between stems
    banded, _ = synthesize(notes, program=0, soundfont=sf2, sample_rate=SR, n_samples=SR + SR // 4,
                           velocity_gains=((64, -6.0), (127, 0.0)))
    loud, _ = synthesize(notes[:1], program=0, soundfont=sf2, sample_rate=SR, n_samples=SR + SR // 4)
    soft, _ = synthesize(notes[1:], program=0, soundfont=sf2, sample_rate=SR, n_samples=SR + SR // 4)
    assert np.allclose(banded, loud + soft * 10 ** (-6 / 20), atol=1e-6)  # one pass per band
