"""Multi-sample player (Salamander layout): file-name parsing, nearest layer and sample, pitch
shift, velocity scaling and the damper release, on sine-tone samples written by the test."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from keras_inst.corpus.sampler import RELEASE_S, load_layers, render_notes

SR = 16000


def _f0(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    return float(np.argmax(spec)) * SR / (8 * len(x))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    d = tmp_path_factory.mktemp("piano")
    for layer, amp in ((4, 0.1), (12, 0.4)):
        (d / f"piano-velocity{layer}" / "audio").mkdir(parents=True)
        for name, key in (("C4", 60), ("D#4", 63)):
            t = np.arange(2 * 48000) / 48000
            tone = amp * np.sin(2 * np.pi * 440 * 2 ** ((key - 69) / 12) * t)
            sf.write(d / f"piano-velocity{layer}" / "audio" / f"{name}v{layer}.wav", tone.astype(np.float32), 48000,
                     subtype="FLOAT")
    (d / "README.md").write_text("not a sample")
    return str(d)


def test_layers_are_indexed_by_midi_velocity_and_key(root):
    layers = load_layers(root)
    assert {v: sorted(k) for v, k in layers.items()} == {32: [60, 63], 96: [60, 63]}
    assert layers[96][63].name == "D#4v12.wav"


def test_pitch_layer_velocity_and_release(root):
    n = 2 * SR
    x = render_notes([(0.1, 0.5, 61, 96)], root=root, sample_rate=SR, n_samples=n)  # C4 sample, +1 semitone
    assert _f0(x[int(0.2 * SR) : int(0.5 * SR)]) == pytest.approx(277.18, abs=1.0)
    assert np.max(np.abs(x[int(0.2 * SR) : int(0.5 * SR)])) == pytest.approx(0.4, abs=0.01)  # layer 12
    assert np.max(np.abs(x[int((0.6 + RELEASE_S) * SR) + 2 :])) == 0.0  # damped after the release
    soft = render_notes([(0.1, 0.5, 63, 40)], root=root, sample_rate=SR, n_samples=n)  # layer 4 (32)
    assert np.max(np.abs(soft)) == pytest.approx(0.1 * 40 / 32, abs=0.005)
    assert _f0(soft[int(0.2 * SR) : int(0.5 * SR)]) == pytest.approx(311.13, abs=1.0)
    quiet = render_notes([(0.1, 0.5, 63, 40)], root=root, sample_rate=SR, n_samples=n, velocity_gains=((52, -6.0),))
    assert np.allclose(quiet, soft * 10 ** (-6 / 20), atol=1e-6)
    with pytest.raises(ValueError, match="no samples"):
        render_notes([(0.0, 0.1, 60, 90)], root=str(root) + "/README.md", sample_rate=SR, n_samples=n)
