"""Lead vocals at a drawn lead-to-accompaniment ratio (keras_inst.corpus.vocal_level): which stems
are leads, the measured LAR after scaling, and a rendered corpus whose stems hold it."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np
import pytest

from keras_inst.corpus.synth import integrated_loudness
from keras_inst.corpus.vocal_level import (
    active_mask,
    lar_db,
    lead_vocal_indices,
    set_lead_vocal_levels,
)

SR = 16000


class _Spec(NamedTuple):
    role: str
    program: int


class _Stem(NamedTuple):
    spec: Any
    notes: list
    audio: np.ndarray
    details: dict = {}


def _stem(role: str, program: int, audio: np.ndarray | None = None, notes: list | None = None) -> _Stem:
    return _Stem(_Spec(role, program), notes or [], np.zeros(SR) if audio is None else audio)


def test_lead_vocals_are_sung_or_spoken_leads_not_a_choir():
    assert lead_vocal_indices([_stem("drums", 128), _stem("vocal", 53), _stem("bass", 38)]) == [1]
    assert lead_vocal_indices([_stem("spoken vocal", 52), _stem("pad", 89)]) == [0]
    assert lead_vocal_indices([_stem("melody", 53), _stem("strum", 25), _stem("bass_roots", 33)]) == [0]
    # a choir (the melody sung beside other voices) has no lead; an instrumental melody is no vocal
    assert lead_vocal_indices([_stem("melody", 53), _stem("upper", 52), _stem("bass", 52)]) == []
    assert lead_vocal_indices([_stem("melody", 40), _stem("inner", 41)]) == []
    # a spoken vocal over a choir is still a lead
    assert lead_vocal_indices([_stem("melody", 53), _stem("upper", 52), _stem("spoken vocal", 52)]) == [2]


def test_active_mask_covers_the_notes():
    mask = active_mask([(0.5, 0.25, 60, 90), (1.0, 0.5, 62, 90)], 2 * SR, SR)
    assert mask.sum() == int(0.25 * SR) + int(0.5 * SR)
    assert mask[int(0.6 * SR)] and not mask[int(0.9 * SR)] and mask[int(1.2 * SR)]


def _song(seconds: float = 4.0) -> list[_Stem]:
    """A vocal tone singing 1-3 s over band noise (both ~-20 LUFS) and a bass tone."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    voice = np.where((t >= 1.0) & (t < 3.0), 0.1 * np.sin(2 * np.pi * 440 * t), 0.0)
    band = 0.05 * rng.standard_normal(t.size)
    bass = 0.1 * np.sin(2 * np.pi * 55 * t)
    return [_stem("drums", 128, band), _stem("vocal", 53, voice, [(1.0, 2.0, 69, 100)]), _stem("bass", 38, bass)]


def test_the_vocal_is_scaled_to_the_drawn_lar():
    stems = _song()
    band = stems[0].audio + stems[2].audio
    mask = active_mask(stems[1].notes, band.size, SR)
    before = lar_db(stems[1].audio, band, mask, SR)
    out = set_lead_vocal_levels(stems, (1.5, 1.5), seed=7, sr=SR)
    assert lar_db(out[1].audio, band, mask, SR) == pytest.approx(1.5, abs=0.05)
    assert out[1].details["lar_db"] == 1.5 and out[1].details["lar_gain_db"] == pytest.approx(1.5 - before, abs=0.01)
    assert out[0] is stems[0] and out[2] is stems[2]  # the band is left alone
    ratio = np.max(np.abs(out[1].audio)) / np.max(np.abs(stems[1].audio))
    assert 20 * np.log10(ratio) == pytest.approx(1.5 - before, abs=0.01)  # one gain, no other change
    # The measurement is over the sung span: silence elsewhere does not lower the vocal's level.
    assert integrated_loudness(out[1].audio[mask], SR) - integrated_loudness(band[mask], SR) == pytest.approx(1.5, abs=0.05)


def test_the_draw_is_seeded_and_spans_the_range():
    targets = [set_lead_vocal_levels(_song(), (-3.0, 5.0), seed=s, sr=SR)[1].details["lar_db"] for s in range(40)]
    assert min(targets) >= -3.0 and max(targets) <= 5.0 and max(targets) - min(targets) > 5.0
    assert targets[3] == set_lead_vocal_levels(_song(), (-3.0, 5.0), seed=3, sr=SR)[1].details["lar_db"]


def test_without_a_band_or_a_lead_nothing_changes():
    voice_only = [_song()[1]]
    assert set_lead_vocal_levels(voice_only, (2.0, 2.0), seed=1, sr=SR) is voice_only
    band_only = [_song()[0], _song()[2]]
    assert set_lead_vocal_levels(band_only, (2.0, 2.0), seed=1, sr=SR) is band_only


def test_a_rendered_corpus_holds_its_vocals_at_the_drawn_lar(tmp_path):
    """Generated pop and funk songs with LAR 2 dB: the written stems (16-bit, after the track's peak gain)
    measure 2 dB over each vocal's notes; the setting is the corpus's identity and README."""
    import soundfile as sf
    import yaml
    from pretty_midi import PrettyMIDI

    from keras_inst.corpus.render import render_corpus

    out = tmp_path / "c"
    render_corpus(out, songs=3, seed=3, workers=1, progress=False, max_seconds=12.0, styles=("pop", "funk"), generated_share=1.0,
                  vocal_lar_db=(2.0, 2.0))
    assert json.loads((out / "corpus.json").read_text())["lead_vocal_lar_db"] == [2.0, 2.0]
    assert "--vocal-lar=2,2" in (out / "README.txt").read_text()
    measured = []
    for track in sorted(out.glob("Track*")):
        extra = yaml.safe_load((track / "metadata.yaml").read_text())["keras_inst"]["stems"]
        audio = {sid: sf.read(track / "stems" / f"{sid}.flac")[0] for sid in extra}
        for sid in (s for s, e in extra.items() if e["role"] == "vocal"):
            assert extra[sid]["lar_db"] == 2.0
            notes = [(n.start, n.end - n.start) for i in PrettyMIDI(str(track / "MIDI" / f"{sid}.mid")).instruments for n in i.notes]
            band = np.sum([a for s, a in audio.items() if s != sid], axis=0)
            measured.append(lar_db(audio[sid], band, active_mask(notes, band.size, SR), SR))
    assert len(measured) >= 2 and np.allclose(measured, 2.0, atol=0.1)
    with pytest.raises(ValueError, match="lead_vocal_lar_db"):  # another setting is another corpus
        render_corpus(out, songs=3, seed=3, workers=1, progress=False, max_seconds=12.0, styles=("pop", "funk"), generated_share=1.0)
    with pytest.raises(ValueError, match="vocal_lar_db must be"):
        render_corpus(tmp_path / "d", songs=1, seed=3, vocal_lar_db=(5.0, -3.0))


def test_config_checks_the_lar_range():
    from keras_inst.config.data import DataConfig

    assert DataConfig(render_vocal_lar_db=(-3.0, 5.0)).render_vocal_lar_db == (-3.0, 5.0)
    with pytest.raises(ValueError, match="data.render_vocal_lar_db"):
        DataConfig(render_vocal_lar_db=(4.0, 1.0))
    with pytest.raises(ValueError, match="data.render_vocal_lar_db': must be <= 20.0"):
        DataConfig(render_vocal_lar_db=(0.0, 25.0))


def test_the_render_command_takes_a_lar_range(tmp_path, capsys):
    from keras_inst.data.cli import build_parser, main

    assert build_parser().parse_args(["render", "--out", "x", "--vocal-lar=-2,4"]).vocal_lar == (-2.0, 4.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["render", "--out", "x", "--vocal-lar", "loud"])
    assert "expected LOW,HIGH in dB" in capsys.readouterr().err
    main(["render", "--out", str(tmp_path / "c"), "--songs", "1", "--seed", "3", "--workers", "1", "--max-seconds", "4",
          "--vocal-lar", "0,1"])
    assert json.loads((tmp_path / "c" / "corpus.json").read_text())["lead_vocal_lar_db"] == [0.0, 1.0]
