"""Embedded multitrack corpus: music21 scores arranged for random ensembles, rendered per stem.

Each song takes an excerpt of a score from music21's bundled corpus (Bach chorales, string
quartets, madrigals, folk tunes), gives its parts to the instruments of a randomly chosen
ensemble (string quartet, rock band, jazz combo, ...), adds generated accompaniment from the
score's implied harmony (bass, guitar strums, piano comping, pads, drums) and renders every part
separately with a General-MIDI SoundFont (tinysoundfont). Stems are loudness-normalised like
Slakh (BS.1770 integrated loudness to ``-13 LUFS`` plus a random per-stem offset, then one gain for
the whole song so nothing clips) and written in Slakh's exact layout, so the Slakh reader reads
it unchanged as dataset ``rendered``. Rendering is deterministic for a seed, incremental
(finished tracks are kept; a killed render resumes) and parallel over tracks.

The plan of each track (ensemble, roles, programs, levels) is :mod:`keras_inst.corpus.ensembles`, the
arrangement of a score for it :mod:`keras_inst.corpus.arrange`, the synthesis of one part and the
loudness measure :mod:`keras_inst.corpus.synth`; this module renders tracks and writes the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_inst.corpus.arrange import arrange
from keras_inst.corpus.ensembles import TrackPlan, plan_corpus
from keras_inst.corpus.scores import Score, load_source
from keras_inst.corpus.synth import (
    default_soundfont,
    integrated_loudness,
    soundfont_bytes,
    synthesize,
)

RENDER_VERSION = 1
TARGET_LUFS = -13.0  # Slakh's normalization_factor
TARGET_PEAK_DB = -1.0  # Slakh's target_peak
TAIL_SECONDS = 1.0  # release tail after the last note
DEFAULT_MAX_SECONDS = 30.0
CORPUS_FILE = "corpus.json"

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


def _render_track(plan: TrackPlan, out_dir: Path, params: dict) -> dict:
    """Arrange, synthesize and write one track into a temp folder renamed into place."""
    import pretty_midi
    import soundfile as sf
    import yaml

    sr, soundfont = params["sample_rate"], params["soundfont"]
    rng = np.random.default_rng([plan.seed, 2])
    score: Score = load_source(plan.source_kind, rng)
    song = arrange(score, plan, rng=rng, max_seconds=params["max_seconds"])
    n_samples = int(np.ceil((song.seconds + TAIL_SECONDS) * sr))
    stems = []
    for sp in plan.stems:
        notes = song.parts.get(sp.name, [])
        if len(notes) < 2:
            continue  # the excerpt left this part (almost) silent
        audio, preset = synthesize(notes, program=sp.program, soundfont=soundfont, sample_rate=sr, n_samples=n_samples)
        raw = integrated_loudness(audio, sr)
        if not np.isfinite(raw):
            continue
        gain = 10 ** ((TARGET_LUFS + sp.level_db - raw) / 20)  # normalise like Slakh
        stems.append((sp, notes, audio * gain, preset, raw))
    if not stems:
        raise ValueError(f"{plan.name}: no audible stem from {score.source}")
    peak_lin = 10 ** (TARGET_PEAK_DB / 20)
    mix = np.sum([s[2] for s in stems], axis=0)
    peak = max(float(np.max(np.abs(mix))), max(float(np.max(np.abs(s[2]))) for s in stems))
    overall = min(1.0, peak_lin / peak)  # one gain for all stems keeps mix == sum(stems)
    tmp = out_dir / f".tmp-{plan.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "stems").mkdir(parents=True)
    (tmp / "MIDI").mkdir()
    whole = pretty_midi.PrettyMIDI(initial_tempo=song.qpm)
    mix_i = np.zeros(n_samples, dtype=np.int32)
    meta_stems, extra_stems = {}, {}
    for i, (sp, notes, audio, preset, raw) in enumerate(stems):
        sid = f"S{i:02d}"
        pcm = np.clip(np.round(audio * overall * 32768.0), -32768, 32767).astype(np.int16)
        mix_i += pcm
        sf.write(tmp / "stems" / f"{sid}.flac", pcm, sr, subtype="PCM_16", format="FLAC")
        inst = pretty_midi.Instrument(program=0 if sp.is_drum else sp.program, is_drum=sp.is_drum, name=slakh_program_name(sp.program))
        inst.notes = [pretty_midi.Note(velocity=v, pitch=k, start=on, end=on + d) for on, d, k, v in notes]
        one = pretty_midi.PrettyMIDI(initial_tempo=song.qpm)
        one.instruments.append(inst)
        one.write(str(tmp / "MIDI" / f"{sid}.mid"))
        whole.instruments.append(inst)
        meta_stems[sid] = {
            "audio_rendered": True,
            "inst_class": slakh_inst_class(sp.program),
            "integrated_loudness": round(integrated_loudness(audio, sr), 4),
            "is_drum": sp.is_drum,
            "midi_program_name": slakh_program_name(sp.program),
            "midi_saved": True,
            "plugin_name": f"{Path(soundfont).name}:{preset}",
            "program_num": sp.program,
        }
        extra_stems[sid] = {"role": sp.role, "level_db": sp.level_db, "raw_loudness": round(raw, 4)}
    if np.max(np.abs(mix_i)) > 32767:
        raise ValueError(f"{plan.name}: mix overflows 16 bits after gain {overall}")
    sf.write(tmp / "mix.flac", mix_i.astype(np.int16), sr, subtype="PCM_16", format="FLAC")
    whole.write(str(tmp / "all_src.mid"))
    meta = {
        "UUID": hashlib.md5(score.source.encode()).hexdigest(),  # same score -> same UUID, like Slakh
        "audio_dir": "stems",
        "lmd_midi_dir": f"music21/corpus/{score.source}",
        "midi_dir": "MIDI",
        "normalization_factor": TARGET_LUFS,
        "normalized": True,
        "overall_gain": round(overall, 8),
        "stems": meta_stems,
        "target_peak": TARGET_PEAK_DB,
        "keras_inst": {
            "render_version": RENDER_VERSION, "corpus_seed": params["seed"], "track_seed": plan.seed,
            "ensemble": plan.ensemble, "style": plan.style, "source_kind": plan.source_kind,
            "source": score.source, "start_quarter": song.start_q, "qpm": round(song.qpm, 3),
            "tempo_factor": round(song.tempo_factor, 4), "transpose": song.transpose,
            "key": song.key_name, "seconds": round(n_samples / sr, 3), "stems": extra_stems,
        },
    }
    (tmp / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=True, default_flow_style=False))
    final = out_dir / plan.name
    if final.exists():  # rendered meanwhile by someone else: theirs is identical
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, final)
    return {"ensemble": plan.ensemble, "seconds": n_samples / sr}


def _job(args: tuple[TrackPlan, str, dict]) -> dict:
    plan, out_dir, params = args
    return _render_track(plan, Path(out_dir), params)


# ---------------------------------------------------------------------------------------------
# The corpus.


@dataclass(frozen=True)
class RenderReport:
    out_dir: Path
    songs: int  # tracks in the corpus
    rendered: int  # tracks rendered by this call
    reused: int  # tracks found complete
    seconds: float  # wall time of this call
    audio_seconds: float  # duration of the tracks rendered by this call
    ensembles: dict[str, int] = field(default_factory=dict)  # of the tracks rendered by this call


def _params(seed: int, soundfont: Path, sample_rate: int, max_seconds: float) -> dict:
    import music21

    return {
        "format": "keras_inst-rendered (Slakh layout)",
        "render_version": RENDER_VERSION,
        "seed": seed,
        "sample_rate": sample_rate,
        "max_seconds": max_seconds,
        "soundfont": str(soundfont),
        "soundfont_sha1": hashlib.sha1(soundfont_bytes(str(soundfont))).hexdigest(),
        "music21_version": music21.__version__,
    }


_NOT_IDENTITY = ("songs", "complete", "soundfont")  # may differ between compatible renders


def _check_existing(out: Path, params: dict, songs: int) -> dict | None:
    path = out / CORPUS_FILE
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable corpus description ({e}); delete it or use another --out") from e
    diff = [k for k in params if k not in _NOT_IDENTITY and old.get(k) != params[k]]
    if diff:
        detail = ", ".join(f"{k}: {old.get(k)!r} != {params[k]!r}" for k in diff)
        raise ValueError(f"{out} holds a corpus rendered with other parameters ({detail}); use another --out")
    if int(old.get("songs", 0)) > songs:
        raise ValueError(f"{out} holds {old['songs']} songs; asked for {songs} (use --songs {old['songs']} or another --out)")
    return old


def render_corpus(
    out_dir: str | Path,
    *,
    songs: int,
    seed: int,
    soundfont: str | None = None,
    sample_rate: int = 16000,
    workers: int | None = None,
    progress: bool = True,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> RenderReport:
    """Render tracks 1..songs into ``out_dir`` (Slakh layout); finished tracks are kept."""
    t0 = time.perf_counter()
    if songs < 1:
        raise ValueError(f"songs must be >= 1, got {songs}")
    if sample_rate < 4000:
        raise ValueError(f"sample_rate must be >= 4000 Hz, got {sample_rate}")
    if not 2.0 <= max_seconds <= 600.0:
        raise ValueError(f"max_seconds must be in [2, 600], got {max_seconds}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    sf_path = Path(soundfont).expanduser().resolve() if soundfont else default_soundfont()
    if not sf_path.is_file():
        raise ValueError(f"soundfont {str(sf_path)!r} does not exist")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    params = _params(seed, sf_path, sample_rate, float(max_seconds))
    old = _check_existing(out, params, songs)
    if old is None and any(out.glob("Track*")):
        raise ValueError(f"{out} holds Track folders but no {CORPUS_FILE}: not a rendered corpus; use another --out")
    plans = plan_corpus(songs, seed)
    todo = [p for p in plans if not (out / p.name / "metadata.yaml").is_file()]
    if old and old.get("complete") and old.get("songs") == songs and not todo:
        return RenderReport(out, songs, 0, songs, time.perf_counter() - t0, 0.0)
    desc = {**params, "songs": songs, "complete": False}
    (out / CORPUS_FILE).write_text(json.dumps(desc, indent=2, sort_keys=True) + "\n")
    for stale in out.glob(".tmp-Track*"):  # left by a killed render
        shutil.rmtree(stale, ignore_errors=True)
    results = _run_jobs([(p, str(out), params) for p in todo], workers, progress)
    desc["complete"] = True
    (out / CORPUS_FILE).write_text(json.dumps(desc, indent=2, sort_keys=True) + "\n")
    (out / "README.txt").write_text(_readme(desc))
    return RenderReport(
        out, songs, len(todo), songs - len(todo), time.perf_counter() - t0,
        float(sum(r["seconds"] for r in results)), dict(Counter(r["ensemble"] for r in results)),
    )


def _run_jobs(jobs: list, workers: int | None, progress: bool) -> list[dict]:
    from tqdm import tqdm

    n = min(len(jobs), workers or os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="render", unit="song", disable=not progress or not jobs, file=sys.stderr)
    results = []
    if n <= 1:
        for j in jobs:
            results.append(_job(j))
            bar.update()
    else:
        import multiprocessing

        # spawn, not fork: the caller may hold TensorFlow threads, which fork can deadlock
        with multiprocessing.get_context("spawn").Pool(n) as pool:
            for r in pool.imap_unordered(_job, jobs):
                results.append(r)
                bar.update()
    bar.close()
    return results


def _readme(desc: dict) -> str:
    lines = [
        "keras_inst embedded multitrack corpus (Slakh layout: TrackNNNNN/{metadata.yaml,mix.flac,stems/,MIDI/}).",
        "Scores from music21's bundled corpus, arranged for random ensembles and rendered per stem",
        "with a General-MIDI SoundFont. Regenerate with:",
        f"  python -m keras_inst.data render --out DIR --songs {desc['songs']} --seed {desc['seed']}"
        f" --sample-rate {desc['sample_rate']} --soundfont {desc['soundfont']}",
        "",
    ]
    return "\n".join(lines + [f"{k}: {v}" for k, v in sorted(desc.items())]) + "\n"


def run_render_cli(args) -> int:
    """``python -m keras_inst.data render``: render, then print a one-line summary."""
    rep = render_corpus(
        args.out, songs=args.songs, seed=args.seed, soundfont=args.soundfont,
        sample_rate=args.sample_rate, workers=args.workers,
        max_seconds=getattr(args, "max_seconds", None) or DEFAULT_MAX_SECONDS,
    )
    print(
        f"{rep.out_dir}: {rep.songs} songs ({rep.rendered} rendered, {rep.reused} already there), "
        f"{rep.audio_seconds / 60:.1f} min of audio in {rep.seconds:.1f} s"
    )
    return 0
