"""One track of the embedded corpus: arrange a score for a track plan, synthesise every stem on
its drawn sample source, normalise like Slakh and write the track folder in Slakh's layout.

:mod:`keras_inst.corpus.render` plans the corpus and runs this per track (in worker processes).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from keras_inst import atomic
from keras_inst.corpus.arrange import arrange
from keras_inst.corpus.ensembles import StemPlan, TrackPlan
from keras_inst.corpus.gains import key_gains, velocity_gains
from keras_inst.corpus.scores import Score, load_source
from keras_inst.corpus.songstyles import GENERATED_KIND
from keras_inst.corpus.songwriter import write_song
from keras_inst.corpus.sources import (
    Discovery,
    amp_details,
    amp_for,
    candidates,
    draw_source,
    drawn_details,
    play,
)
from keras_inst.corpus.synth import integrated_loudness

RENDER_VERSION = 2  # 2: a sample source per stem
TARGET_LUFS = -13.0  # Slakh's normalization_factor
TARGET_PEAK_DB = -1.0  # Slakh's target_peak
TAIL_SECONDS = 1.0  # release tail after the last note
DEFAULT_MAX_SECONDS = 30.0

# Slakh's GM tables (fixtures/slakh/metadata/midi_inst_values): class of each program range and
# the five program names where Slakh differs from pretty_midi's GM names.
_SLAKH_CLASSES = (
    (0, "Piano"), (8, "Chromatic Percussion"), (16, "Organ"), (24, "Guitar"), (32, "Bass"),
    (40, "Strings"), (48, "Strings (continued)"), (56, "Brass"), (64, "Reed"), (72, "Pipe"),
    (80, "Synth Lead"), (88, "Synth Pad"), (96, "Sound Effects"), (104, "Ethnic"),
    (112, "Percussive"), (119, "Sound effects"), (128, "Drums"),
)
_SLAKH_NAMES = {31: "Guitar harmonics", 54: "Synth Voice", 76: "Blown Bottle",
                83: "Lead 4 (chiff)", 109: "Bag pipe", 128: "Drums"}


def slakh_inst_class(program: int) -> str:
    """Slakh's ``inst_class`` of a GM program (0..127, 128 = drums)."""
    if not 0 <= program <= 128:
        raise ValueError(f"GM program must be in 0..128, got {program}")
    return [name for start, name in _SLAKH_CLASSES if program >= start][-1]


def slakh_program_name(program: int) -> str:
    """Slakh's ``midi_program_name`` of a GM program (0..127, 128 = drums)."""
    if program in _SLAKH_NAMES:
        return _SLAKH_NAMES[program]
    import pretty_midi

    return pretty_midi.program_to_instrument_name(program)


# ---------------------------------------------------------------------------------------------
# One track.


class RenderedStem(NamedTuple):
    """One synthesised, loudness-normalised stem of a track (float audio before the track gain)."""

    spec: Any  # the plan's StemPlan: role, program, is_drum, level_db
    notes: list  # (onset s, duration s, key, velocity)
    audio: np.ndarray  # [n_samples] float
    preset: str  # "source:preset"
    raw_loudness: float  # LUFS before normalisation
    source: str  # sample-source name (keras_inst.corpus.sources)
    details: dict = {}  # what a built-in engine / the amp drew ({"patch"|"kit"|"amp": {...}}), for metadata


def _render_stems(plan: TrackPlan, song, found: Discovery, sr: int, n_samples: int,
                  unplayable: list[int], *, modern: bool = False, prefer: tuple[str, ...] = ()) -> list[RenderedStem]:
    """(stem plan, notes, normalised audio, "source:preset", raw LUFS, source name) per audible
    stem. A part that no selected source can play (a partial General-MIDI set such as freepats
    rendering alone) is left out and its GM program appended to ``unplayable`` (128: drums).
    ``modern``: electric guitars may go through an amp (:func:`~keras_inst.corpus.sources.amp_for`);
    ``prefer``: sources that play every stem they can (:func:`~keras_inst.corpus.sources.draw_source`)."""
    stems = []
    for i, sp in enumerate(plan.stems):
        notes = song.parts.get(sp.name, [])
        if len(notes) < 2:
            continue  # the excerpt left this part (almost) silent
        keys = {k for _, _, k, _ in notes} if sp.is_drum else None
        if not candidates(found, sp.program, keys):
            unplayable.append(int(sp.program))
            continue
        src = draw_source(found, track_seed=plan.seed, stem_index=i, program=sp.program, drum_keys=keys, prefer=prefer)
        seed = (plan.seed * 131 + i) % 2**63
        audio, preset = play(src, found.paths[src.name], notes, program=sp.program, sample_rate=sr,
                             n_samples=n_samples, seed=seed, velocity_gains=velocity_gains(src.name, sp.program),
                             key_gains=key_gains(src.name) if sp.is_drum else ())
        details = drawn_details(src, sp.program, seed)
        amp = amp_for(sp.program, seed) if modern else None
        if amp is not None:  # before the loudness normalisation: the amp keeps the RMS, not the LUFS
            from keras_inst.corpus.amp import apply_amp

            audio, preset, details = apply_amp(audio, amp, sr), f"{preset}+{amp.name}", {**details, **amp_details(amp)}
        raw = integrated_loudness(audio, sr)
        if not np.isfinite(raw):
            continue
        stems.append(RenderedStem(sp, notes, _normalise(audio, raw, sp.level_db, sr), f"{src.name}:{preset}", raw,
                                  src.name, details))
    return stems


def _normalise(audio: np.ndarray, raw: float, level_db: float, sr: int) -> np.ndarray:
    """A stem at ``TARGET_LUFS + level_db`` (``raw``: its loudness now), like Slakh."""
    audio = audio * 10 ** ((TARGET_LUFS + level_db - raw) / 20)
    # a second step: the gain can lift quiet blocks (tails, a renderer's noise floor) over
    # BS.1770's -70 LUFS gate, which moves the gated loudness by up to ~0.1 dB
    return audio * 10 ** ((TARGET_LUFS + level_db - integrated_loudness(audio, sr)) / 20)


def _spoken_stem(plan: TrackPlan, probability: float, sr: int, n_samples: int) -> RenderedStem | None:
    """With ``probability`` (seeded per track), a spoken-vocal stem over the song
    (:mod:`keras_inst.corpus.speech`): labelled voice only (GM 52), at 0-4 dB above the loudness
    target as a lead vocal; its MIDI notes mark the phrases (key 60: speech has no score pitch)."""
    rng = np.random.default_rng([plan.seed, 0x5C])
    if probability <= 0.0 or rng.random() >= probability:
        return None
    from keras_inst.corpus.speech import SPEECH_PROGRAM, speak

    audio, spans, details = speak(sample_rate=sr, n_samples=n_samples, seed=(plan.seed * 131 + 0x5C) % 2**63)
    raw = integrated_loudness(audio, sr)
    if not spans or not np.isfinite(raw):
        return None
    spec = StemPlan(name="spoken", role="spoken vocal", program=SPEECH_PROGRAM, level_db=round(float(rng.uniform(0, 4)), 2))
    notes = [(on, dur, 60, 90) for on, dur in spans]
    return RenderedStem(spec, notes, _normalise(audio, raw, spec.level_db, sr), f"flite_speech:{details['speaker']['voice']}",
                        raw, "flite_speech", details)


def _write_stem(tmp: Path, sid: str, stem: RenderedStem, overall: float, qpm: float, sr: int,
                whole: Any) -> tuple[np.ndarray, dict, dict]:
    """Write ``stems/<sid>.flac`` and ``MIDI/<sid>.mid``; add the part to ``whole`` (all_src.mid).

    Returns the int16 PCM (summed into the mix) and the stem's Slakh and keras_inst metadata.
    """
    import pretty_midi
    import soundfile as sf

    sp = stem.spec
    pcm = np.clip(np.round(stem.audio * overall * 32768.0), -32768, 32767).astype(np.int16)
    sf.write(tmp / "stems" / f"{sid}.flac", pcm, sr, subtype="PCM_16", format="FLAC")
    inst = pretty_midi.Instrument(program=0 if sp.is_drum else sp.program, is_drum=sp.is_drum,
                                  name=slakh_program_name(sp.program))
    inst.notes = [pretty_midi.Note(velocity=v, pitch=k, start=on, end=on + d) for on, d, k, v in stem.notes]
    one = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    one.instruments.append(inst)
    one.write(str(tmp / "MIDI" / f"{sid}.mid"))
    whole.instruments.append(inst)
    meta = {
        "audio_rendered": True,
        "inst_class": slakh_inst_class(sp.program),
        "integrated_loudness": round(integrated_loudness(stem.audio, sr), 4),
        "is_drum": sp.is_drum,
        "midi_program_name": slakh_program_name(sp.program),
        "midi_saved": True,
        "plugin_name": stem.preset,
        "program_num": sp.program,
    }
    extra = {"role": sp.role, "level_db": sp.level_db, "raw_loudness": round(stem.raw_loudness, 4),
             "source": stem.source, **stem.details}
    return pcm.astype(np.int32), meta, extra


def render_track(plan: TrackPlan, out_dir: Path, params: dict, found: Discovery) -> dict:
    """Arrange, synthesize and write one track into a temp folder renamed into place."""
    import pretty_midi
    import soundfile as sf
    import yaml

    sr = params["sample_rate"]
    rng = np.random.default_rng([plan.seed, 2])
    if plan.source_kind == GENERATED_KIND:  # a generated song (data.render_styles)
        score: Score | None = None
        song = write_song(plan, rng=rng, max_seconds=params["max_seconds"])
    else:
        score = load_source(plan.source_kind, rng)
        song = arrange(score, plan, rng=rng, max_seconds=params["max_seconds"])
    source = score.source if score is not None else f"songwriter/{plan.style}"
    n_samples = int(np.ceil((song.seconds + TAIL_SECONDS) * sr))
    unplayable: list[int] = []
    stems = _render_stems(plan, song, found, sr, n_samples, unplayable, modern=params.get("render_modern", False),
                          prefer=tuple(params.get("prefer_sources", ())))
    spoken = _spoken_stem(plan, params.get("spoken_vocals", {}).get("probability", 0.0), sr, n_samples)
    stems += [spoken] if spoken is not None and stems else []
    if params.get("lead_vocal_lar_db"):  # opt-in: lead vocals at a produced mix's level (corpus.vocal_level)
        from keras_inst.corpus.vocal_level import set_lead_vocal_levels

        stems = set_lead_vocal_levels(stems, tuple(params["lead_vocal_lar_db"]), seed=plan.seed, sr=sr)
    if not stems:
        raise ValueError(f"{plan.name}: no audible stem from {source}"
                         + (f" (GM programs {unplayable}: no selected source plays them)" if unplayable else ""))
    peak_lin = 10 ** (TARGET_PEAK_DB / 20)
    mix = np.sum([s.audio for s in stems], axis=0)
    peak = max(float(np.max(np.abs(mix))), max(float(np.max(np.abs(s.audio))) for s in stems))
    overall = min(1.0, peak_lin / peak)  # one gain for all stems keeps mix == sum(stems)
    tmp = out_dir / f".tmp-{plan.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "stems").mkdir(parents=True)
    (tmp / "MIDI").mkdir()
    whole = pretty_midi.PrettyMIDI(initial_tempo=song.qpm)
    mix_i = np.zeros(n_samples, dtype=np.int32)
    meta_stems, extra_stems = {}, {}
    for i, stem in enumerate(stems):
        sid = f"S{i:02d}"
        pcm, meta_stems[sid], extra_stems[sid] = _write_stem(tmp, sid, stem, overall, song.qpm, sr, whole)
        mix_i += pcm
    if np.max(np.abs(mix_i)) > 32767:
        raise ValueError(f"{plan.name}: mix overflows 16 bits after gain {overall}")
    sf.write(tmp / "mix.flac", mix_i.astype(np.int16), sr, subtype="PCM_16", format="FLAC")
    whole.write(str(tmp / "all_src.mid"))
    meta = {
        "UUID": hashlib.md5(source.encode()).hexdigest(),  # same score -> same UUID, like Slakh
        "audio_dir": "stems",
        "lmd_midi_dir": f"music21/corpus/{source}" if score is not None else source,
        "midi_dir": "MIDI",
        "normalization_factor": TARGET_LUFS,
        "normalized": True,
        "overall_gain": round(overall, 8),
        "stems": meta_stems,
        "target_peak": TARGET_PEAK_DB,
        "keras_inst": {
            "render_version": RENDER_VERSION, "corpus_seed": params["seed"], "track_seed": plan.seed,
            "ensemble": plan.ensemble, "style": plan.style, "source_kind": plan.source_kind,
            "source": source, "start_quarter": song.start_q, "qpm": round(song.qpm, 3),
            "tempo_factor": round(song.tempo_factor, 4), "transpose": song.transpose,
            "key": song.key_name, "seconds": round(n_samples / sr, 3), "stems": extra_stems,
            **({"unplayable_programs": unplayable} if unplayable else {}),
            **({"form": [list(f) for f in song.form], "progressions": dict(song.progressions)}
               if song.form else {}),
        },
    }
    (tmp / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=True, default_flow_style=False))
    # Rendered meanwhile by another process: theirs is identical (same seed), keep it.
    atomic.publish_dir(tmp, out_dir / plan.name, if_exists="keep")
    return {"ensemble": plan.ensemble, "seconds": n_samples / sr, "sources": [s.source for s in stems],
            "unplayable": unplayable}
