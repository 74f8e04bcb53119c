"""Embedded multitrack corpus: music21 scores arranged for random ensembles, rendered per stem.

Each song takes an excerpt of a score from music21's bundled corpus (Bach chorales, string
quartets, madrigals, folk tunes), gives its parts to the instruments of a randomly chosen
ensemble (string quartet, rock band, jazz combo, ...), adds generated accompaniment from the
score's implied harmony (bass, guitar strums, piano comping, pads, drums) and renders every part
separately on a sample source drawn per stem (seeded) among the installed sample sets of
:mod:`keras_inst.corpus.sources` (GM SoundFonts, recorded drum kits, a sung-vowel singer),
level-corrected per velocity (:mod:`keras_inst.corpus.levels`). Stems are loudness-normalised like
Slakh (BS.1770 integrated loudness to ``-13 LUFS`` plus a random per-stem offset, then one gain for
the whole song so nothing clips) and written in Slakh's exact layout, so the Slakh reader reads
it unchanged as dataset ``rendered``. Rendering is deterministic for a seed, incremental
(finished tracks are kept; a killed render resumes) and parallel over tracks.

The plan of each track (ensemble, roles, programs, levels) is :mod:`keras_inst.corpus.ensembles`, the
arrangement of a score for it :mod:`keras_inst.corpus.arrange`, the sources and the synthesis of one
part :mod:`keras_inst.corpus.sources`, the loudness measure :mod:`keras_inst.corpus.synth`; this
module renders tracks and writes the corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_inst.atomic import write_text
from keras_inst.corpus.arrange import arrange
from keras_inst.corpus.ensembles import TrackPlan, plan_corpus
from keras_inst.corpus.levels import key_gains, velocity_gains
from keras_inst.corpus.scores import Score, load_source
from keras_inst.corpus.sources import (
    ALL_MELODIC,
    DRUMS,
    Discovery,
    SampleSource,
    discover,
    draw_source,
    is_reserved,
    play,
)
from keras_inst.corpus.synth import integrated_loudness

RENDER_VERSION = 2  # 2: a sample source per stem
logger = logging.getLogger("keras_inst.corpus.render")
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


def _render_stems(plan: TrackPlan, song, found: Discovery, sr: int, n_samples: int) -> list[tuple]:
    """(stem plan, notes, normalised audio, "source:preset", raw LUFS, source name) per audible stem."""
    stems = []
    for i, sp in enumerate(plan.stems):
        notes = song.parts.get(sp.name, [])
        if len(notes) < 2:
            continue  # the excerpt left this part (almost) silent
        keys = {k for _, _, k, _ in notes} if sp.is_drum else None
        src = draw_source(found, track_seed=plan.seed, stem_index=i, program=sp.program, drum_keys=keys)
        audio, preset = play(src, found.paths[src.name], notes, program=sp.program, sample_rate=sr,
                             n_samples=n_samples, seed=(plan.seed * 131 + i) % 2**63,
                             velocity_gains=velocity_gains(src.name, sp.program),
                             key_gains=key_gains(src.name) if sp.is_drum else ())
        raw = integrated_loudness(audio, sr)
        if not np.isfinite(raw):
            continue
        audio = audio * 10 ** ((TARGET_LUFS + sp.level_db - raw) / 20)  # normalise like Slakh
        # a second step: the gain can lift quiet blocks (tails, a renderer's noise floor) over
        # BS.1770's -70 LUFS gate, which moves the gated loudness by up to ~0.1 dB
        audio = audio * 10 ** ((TARGET_LUFS + sp.level_db - integrated_loudness(audio, sr)) / 20)
        stems.append((sp, notes, audio, f"{src.name}:{preset}", raw, src.name))
    return stems


def _render_track(plan: TrackPlan, out_dir: Path, params: dict, found: Discovery) -> dict:
    """Arrange, synthesize and write one track into a temp folder renamed into place."""
    import pretty_midi
    import soundfile as sf
    import yaml

    sr = params["sample_rate"]
    rng = np.random.default_rng([plan.seed, 2])
    score: Score = load_source(plan.source_kind, rng)
    song = arrange(score, plan, rng=rng, max_seconds=params["max_seconds"])
    n_samples = int(np.ceil((song.seconds + TAIL_SECONDS) * sr))
    stems = _render_stems(plan, song, found, sr, n_samples)
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
    for i, (sp, notes, audio, preset, raw, source) in enumerate(stems):
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
            "plugin_name": preset,
            "program_num": sp.program,
        }
        extra_stems[sid] = {"role": sp.role, "level_db": sp.level_db, "raw_loudness": round(raw, 4),
                            "source": source}
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
    return {"ensemble": plan.ensemble, "seconds": n_samples / sr, "sources": [s[5] for s in stems]}


def _job(args: tuple[TrackPlan, str, dict, Discovery]) -> dict:
    plan, out_dir, params, found = args
    return _render_track(plan, Path(out_dir), params, found)


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
    sources: dict[str, int] = field(default_factory=dict)  # stems per sample source, this call
    missing_sources: tuple[str, ...] = ()  # one line per selected source not installed (skipped)


def _fingerprint(path: str) -> str:
    """sha1 of a SoundFont file, a Hydrogen kit's drumkit.xml or a sample folder's file list
    (names and sizes); "builtin" for the singer."""
    if not path:
        return f"builtin-{RENDER_VERSION}"
    p = Path(path)
    h = hashlib.sha1()
    if p.is_dir() and not (p / "drumkit.xml").is_file():  # a sample folder: its file list
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(p)}:{f.stat().st_size}\n".encode())
        return h.hexdigest()
    with open(p / "drumkit.xml" if p.is_dir() else p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _params(seed: int, found: Discovery, sample_rate: int, max_seconds: float) -> dict:
    import music21

    gains = {s.name: [{p: velocity_gains(s.name, p) for p in sorted(s.programs)}, key_gains(s.name)]
             for s in found.available}
    return {
        "format": "keras_inst-rendered (Slakh layout)",
        "render_version": RENDER_VERSION,
        "seed": seed,
        "sample_rate": sample_rate,
        "max_seconds": max_seconds,
        "sources": {s.name: _fingerprint(found.paths[s.name]) for s in found.available},
        "level_corrections_sha1": hashlib.sha1(json.dumps(gains, sort_keys=True).encode()).hexdigest(),
        "source_paths": dict(found.paths),
        "missing_sources": found.report(),
        "music21_version": music21.__version__,
    }


# may differ between compatible renders (paths: TimGM6mb lives in each venv)
_NOT_IDENTITY = ("songs", "complete", "source_paths", "missing_sources")


def _discover(soundfont: str | None, sources, exclude_sources) -> Discovery:
    """The source set of a render: the registry (filtered), or one user SoundFont for everything."""
    if soundfont is None:
        return discover(sources, exclude_sources)
    if sources or exclude_sources:
        raise ValueError("soundfont replaces the sample-source registry; don't combine it with sources/exclude_sources")
    path = Path(soundfont).expanduser().resolve()
    if is_reserved(str(path)):
        raise ValueError(f"soundfont {str(path)!r}: the MuseScore General family is reserved for independent evaluation")
    if not path.is_file():
        raise ValueError(f"soundfont {str(path)!r} does not exist")
    own = SampleSource(f"file:{path.name}", "sf2", "user", str(path), "?", ALL_MELODIC | {DRUMS})
    return discover(registry=(own,))


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
    sources: str | list[str] | None = None,
    exclude_sources: str | list[str] | None = None,
) -> RenderReport:
    """Render tracks 1..songs into ``out_dir`` (Slakh layout); finished tracks are kept.

    ``sources`` / ``exclude_sources`` restrict the sample sources (names of
    :data:`keras_inst.corpus.sources.REGISTRY`); selected ones that are not installed are
    skipped and listed in the report (``missing_sources``), the log and ``corpus.json``.
    ``soundfont`` renders everything with one user SoundFont instead.
    """
    t0 = time.perf_counter()
    if songs < 1:
        raise ValueError(f"songs must be >= 1, got {songs}")
    if sample_rate < 4000:
        raise ValueError(f"sample_rate must be >= 4000 Hz, got {sample_rate}")
    if not 2.0 <= max_seconds <= 600.0:
        raise ValueError(f"max_seconds must be in [2, 600], got {max_seconds}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    found = _discover(soundfont, sources, exclude_sources)
    for line in found.report():
        logger.warning(line)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    params = _params(seed, found, sample_rate, float(max_seconds))
    old = _check_existing(out, params, songs)
    if old is None and any(out.glob("Track*")):
        raise ValueError(f"{out} holds Track folders but no {CORPUS_FILE}: not a rendered corpus; use another --out")
    plans = plan_corpus(songs, seed)
    todo = [p for p in plans if not (out / p.name / "metadata.yaml").is_file()]
    if old and old.get("complete") and old.get("songs") == songs and not todo:
        return RenderReport(out, songs, 0, songs, time.perf_counter() - t0, 0.0, missing_sources=tuple(found.report()))
    desc = {**params, "songs": songs, "complete": False}
    write_text(out / CORPUS_FILE, json.dumps(desc, indent=2, sort_keys=True) + "\n")
    for stale in out.glob(".tmp-Track*"):  # left by a killed render
        shutil.rmtree(stale, ignore_errors=True)
    results = _run_jobs([(p, str(out), params, found) for p in todo], workers, progress)
    desc["complete"] = True
    write_text(out / CORPUS_FILE, json.dumps(desc, indent=2, sort_keys=True) + "\n")
    write_text(out / "README.txt", _readme(desc))
    return RenderReport(
        out, songs, len(todo), songs - len(todo), time.perf_counter() - t0,
        float(sum(r["seconds"] for r in results)), dict(Counter(r["ensemble"] for r in results)),
        dict(Counter(s for r in results for s in r["sources"])), tuple(found.report()),
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


def _source_args(desc: dict) -> str:
    names = list(desc["sources"])
    if len(names) == 1 and names[0].startswith("file:"):
        return f"--soundfont {desc['source_paths'][names[0]]}"
    return f"--sources {','.join(names)}"


def _readme(desc: dict) -> str:
    lines = [
        "keras_inst embedded multitrack corpus (Slakh layout: TrackNNNNN/{metadata.yaml,mix.flac,stems/,MIDI/}).",
        "Scores from music21's bundled corpus, arranged for random ensembles and rendered per stem",
        "on sample sources drawn per stem (see 'sources'). Regenerate with:",
        f"  python -m keras_inst.data render --out DIR --songs {desc['songs']} --seed {desc['seed']}"
        f" --sample-rate {desc['sample_rate']} " + _source_args(desc),
        "",
    ]
    return "\n".join(lines + [f"{k}: {v}" for k, v in sorted(desc.items())]) + "\n"


def run_render_cli(args) -> int:
    """``python -m keras_inst.data render``: render, then print a one-line summary."""
    rep = render_corpus(
        args.out, songs=args.songs, seed=args.seed, soundfont=args.soundfont,
        sample_rate=args.sample_rate, workers=args.workers,
        max_seconds=getattr(args, "max_seconds", None) or DEFAULT_MAX_SECONDS,
        sources=getattr(args, "sources", None), exclude_sources=getattr(args, "exclude_sources", None),
    )
    for line in rep.missing_sources:
        print(line, file=sys.stderr)
    print(
        f"{rep.out_dir}: {rep.songs} songs ({rep.rendered} rendered, {rep.reused} already there), "
        f"{rep.audio_seconds / 60:.1f} min of audio in {rep.seconds:.1f} s"
        + (f"; stems per source: {dict(sorted(rep.sources.items()))}" if rep.sources else "")
    )
    return 0
