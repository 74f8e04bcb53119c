"""Embedded multitrack corpus: music21 scores arranged for random ensembles, rendered per stem.

Each song takes an excerpt of a score from music21's bundled corpus (Bach chorales, string
quartets, madrigals, folk tunes), gives its parts to the instruments of a randomly chosen
ensemble (string quartet, rock band, jazz combo, ...), adds generated accompaniment from the
score's implied harmony (bass, guitar strums, piano comping, pads, drums) and renders every part
separately on a sample source drawn per stem (seeded) among the installed sample sets of
:mod:`keras_inst.corpus.sources` (GM SoundFonts, recorded drum kits, a sung-vowel singer),
level-corrected per velocity (:mod:`keras_inst.corpus.gains`). Stems are loudness-normalised like
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

from keras_inst.atomic import write_text
from keras_inst.config.data import MAX_VOCAL_LAR_DB
from keras_inst.corpus.ensembles import TrackPlan
from keras_inst.corpus.gains import key_gains, velocity_gains
from keras_inst.corpus.plans import plan_corpus
from keras_inst.corpus.songwriter import SONGWRITER_VERSION
from keras_inst.corpus.sources import (
    ALL_MELODIC,
    DRUMS,
    Discovery,
    SampleSource,
    discover,
    is_reserved,
)
from keras_inst.corpus.track import (  # noqa: F401  (re-exported: the corpus's constants)
    DEFAULT_MAX_SECONDS,
    RENDER_VERSION,
    TARGET_LUFS,
    TARGET_PEAK_DB,
    render_track,
    slakh_inst_class,
    slakh_program_name,
)

CORPUS_FILE = "corpus.json"
logger = logging.getLogger("keras_inst.corpus.render")


def _job(args: tuple[TrackPlan, str, dict, Discovery]) -> dict:
    """One track; a track that cannot be rendered (no selected source plays any of its parts) is
    reported, not fatal: the corpus goes on without it."""
    plan, out_dir, params, found = args
    try:
        return render_track(plan, Path(out_dir), params, found)
    except ValueError as e:
        return {"failed": str(e)}


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
    unplayable: dict[int, int] = field(default_factory=dict)  # GM program -> parts no source played (left out)
    failed: tuple[str, ...] = ()  # "TrackNNNNN: why" per track left out (nothing in it could be played)


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
_NOT_IDENTITY = ("songs", "complete", "source_paths", "missing_sources", "failed_tracks")


def _discover(soundfont: str | None, sources, exclude_sources, modern: bool = False) -> Discovery:
    """The source set of a render: the registry (filtered), or one user SoundFont for everything."""
    if soundfont is None:
        return discover(sources, exclude_sources, modern=modern)
    if sources or exclude_sources or modern:
        raise ValueError("soundfont replaces the sample-source registry; don't combine it with "
                         "sources/exclude_sources/modern")
    path = Path(soundfont).expanduser().resolve()
    if is_reserved(str(path)):
        raise ValueError(f"soundfont {str(path)!r}: the MuseScore General family is reserved for independent evaluation")
    if not path.is_file():
        raise ValueError(f"soundfont {str(path)!r} does not exist")
    own = SampleSource(f"file:{path.name}", "sf2", "user", str(path), "?", ALL_MELODIC | {DRUMS})
    return discover(registry=(own,))


def _prefer(names: str | tuple[str, ...] | list[str], found: Discovery) -> tuple[str, ...]:
    """The ``prefer_sources`` of a render, each one a source it plays (ValueError naming the option)."""
    items = names.split(",") if isinstance(names, str) else list(names)
    prefer = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
    have = [s.name for s in found.available]
    bad = [n for n in prefer if n not in have]
    if bad:
        raise ValueError(f"prefer_sources: {bad} not among the render's available sample sources ({', '.join(have)}); "
                         "select them (sources / modern) and install them")
    return prefer


def _spoken_vocals(probability: float) -> dict | None:
    """The ``spoken_vocals`` identity of a render: its chance per song and flite's version; the
    chance is 0 when flite is not installed (the stems are skipped). None when off."""
    if probability <= 0.0:
        return None
    from keras_inst.corpus.speech import flite_version

    engine = flite_version()
    return {"probability": float(probability) if engine else 0.0, "asked": float(probability), "engine": engine}


def _check_existing(out: Path, params: dict, songs: int) -> dict | None:
    path = out / CORPUS_FILE
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable corpus description ({e}); delete it or use another --out") from e
    # both ways: an opt-in key (render_modern, generated_songs) is absent when off
    diff = [k for k in sorted({*old, *params}) if k not in _NOT_IDENTITY and old.get(k) != params.get(k)]
    if diff:
        detail = ", ".join(f"{k}: {old.get(k)!r} != {params.get(k)!r}" for k in diff)
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
    modern: bool = False,
    styles: tuple[str, ...] | list[str] = (),
    generated_share: float = 0.5,
    prefer_sources: str | tuple[str, ...] | list[str] = (),
    speech: float = 0.0,
    vocal_lar_db: tuple[float, float] | None = None,
) -> RenderReport:
    """Render tracks 1..songs into ``out_dir`` (Slakh layout); finished tracks are kept.

    ``sources`` / ``exclude_sources`` restrict the sample sources (names of
    :data:`keras_inst.corpus.sources.REGISTRY`); selected ones that are not installed are
    skipped and listed in the report (``missing_sources``), the log and ``corpus.json``.
    ``soundfont`` renders everything with one user SoundFont instead. ``modern`` (opt-in, beyond
    the paper) adds the built-in synthesizer and drum machine to the draw and puts electric
    guitars through an amp (:func:`keras_inst.corpus.sources.amp_for`); it is part of the
    corpus's identity (``render_modern`` in ``corpus.json``, absent when off, so the corpora
    rendered before it existed stay valid). ``styles`` (opt-in, beyond the paper): a seeded
    ``generated_share`` of the songs are generated in these styles
    (:mod:`keras_inst.corpus.songwriter`) instead of arranged scores; part of the identity
    (``generated_songs``, absent when off). ``prefer_sources`` (opt-in): these sources play every
    stem they can (:func:`keras_inst.corpus.sources.draw_source`), the others the rest: a held-out
    engine beside the training sources (:func:`keras_inst.data.rendered.held_out_render_args`);
    part of the identity (``prefer_sources``, absent when empty). ``speech`` (opt-in, beyond the
    paper): the chance per song of a spoken-vocal stem over it (:mod:`keras_inst.corpus.speech`,
    flite; labelled voice only); part of the identity (``spoken_vocals``, absent when 0); without
    flite installed it is skipped and reported like a missing sample source. ``vocal_lar_db``
    (opt-in, beyond the paper): (low, high) dB, lead vocals at a lead-to-accompaniment ratio drawn
    in that range (:mod:`keras_inst.corpus.vocal_level`); part of the identity (``lead_vocal_lar_db``,
    absent when None).
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
    if not 0.0 <= speech <= 1.0:
        raise ValueError(f"speech must be a probability in [0, 1], got {speech}")
    if vocal_lar_db is not None and not (len(vocal_lar_db) == 2
                                         and -MAX_VOCAL_LAR_DB <= vocal_lar_db[0] <= vocal_lar_db[1] <= MAX_VOCAL_LAR_DB):
        raise ValueError(f"vocal_lar_db must be (low, high) dB with {-MAX_VOCAL_LAR_DB:g} <= low <= high <= "
                         f"{MAX_VOCAL_LAR_DB:g}, got {vocal_lar_db}")
    found = _discover(soundfont, sources, exclude_sources, modern)
    prefer = _prefer(prefer_sources, found)
    spoken = _spoken_vocals(speech)
    missing = (*found.report(), *(["spoken vocals skipped: flite not installed (apt-get install flite)"]
                                  if spoken and not spoken["engine"] else []))
    for line in missing:
        logger.warning(line)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    params = _params(seed, found, sample_rate, float(max_seconds))
    if modern:  # only when on: older corpus.json files hold no such key and must still match
        params["render_modern"] = True
    if prefer:  # likewise only when on
        params["prefer_sources"] = list(prefer)
    if spoken:  # likewise only when on
        params["spoken_vocals"] = spoken
    if vocal_lar_db is not None:  # likewise only when on
        params["lead_vocal_lar_db"] = [float(v) for v in vocal_lar_db]
    if styles:  # likewise only when on
        params["generated_songs"] = {"styles": list(styles), "share": float(generated_share),
                                     "songwriter_version": SONGWRITER_VERSION}
    old = _check_existing(out, params, songs)
    if old is None and any(out.glob("Track*")):
        raise ValueError(f"{out} holds Track folders but no {CORPUS_FILE}: not a rendered corpus; use another --out")
    plans = plan_corpus(songs, seed, styles=tuple(styles), generated_share=generated_share)
    todo = [p for p in plans if not (out / p.name / "metadata.yaml").is_file()]
    if old and old.get("complete") and old.get("songs") == songs and not todo:
        return RenderReport(out, songs, 0, songs, time.perf_counter() - t0, 0.0, missing_sources=missing)
    desc = {**params, "songs": songs, "complete": False}
    write_text(out / CORPUS_FILE, json.dumps(desc, indent=2, sort_keys=True) + "\n")
    for stale in out.glob(".tmp-Track*"):  # left by a killed render
        shutil.rmtree(stale, ignore_errors=True)
    results = _run_jobs([(p, str(out), params, found) for p in todo], workers, progress)
    failed = tuple(sorted(r["failed"] for r in results if "failed" in r))
    desc["failed_tracks"] = list(failed)  # retried next time
    desc["complete"] = True
    write_text(out / CORPUS_FILE, json.dumps(desc, indent=2, sort_keys=True) + "\n")
    write_text(out / "README.txt", _readme(desc))
    results = [r for r in results if "failed" not in r]
    for line in failed:
        logger.warning("track left out: %s", line)
    unplayable = dict(sorted(Counter(p for r in results for p in r["unplayable"]).items()))
    if unplayable:  # a partial sample set: its songs lack these parts (metadata.yaml lists them)
        logger.warning("%d parts left out, no selected source plays their GM program (program: parts): %s",
                       sum(unplayable.values()), unplayable)
    return RenderReport(
        out, songs, len(todo) - len(failed), songs - len(todo), time.perf_counter() - t0,
        float(sum(r["seconds"] for r in results)), dict(Counter(r["ensemble"] for r in results)),
        dict(Counter(s for r in results for s in r["sources"])), missing, unplayable, failed,
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


def _styles_args(gen: dict | None) -> str:
    return f" --styles {','.join(gen['styles'])} --generated-share {gen['share']}" if gen else ""


def _readme(desc: dict) -> str:
    lines = [
        "keras_inst embedded multitrack corpus (Slakh layout: TrackNNNNN/{metadata.yaml,mix.flac,stems/,MIDI/}).",
        "Scores from music21's bundled corpus, arranged for random ensembles and rendered per stem",
        "on sample sources drawn per stem (see 'sources'). Regenerate with:",
        f"  python -m keras_inst.data render --out DIR --songs {desc['songs']} --seed {desc['seed']}"
        f" --sample-rate {desc['sample_rate']} " + _source_args(desc) + (" --modern" if desc.get("render_modern") else "")
        + _styles_args(desc.get("generated_songs"))
        + (f" --prefer-sources {','.join(desc['prefer_sources'])}" if desc.get("prefer_sources") else "")
        + (f" --speech {desc['spoken_vocals']['asked']}" if desc.get("spoken_vocals") else "")
        + (f" --vocal-lar={','.join(f'{v:g}' for v in desc['lead_vocal_lar_db'])}" if desc.get("lead_vocal_lar_db") else ""),
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
        modern=bool(getattr(args, "modern", False)),
        styles=tuple(getattr(args, "styles", None) or ()),
        generated_share=getattr(args, "generated_share", None) or 0.5,
        prefer_sources=getattr(args, "prefer_sources", None) or (),
        speech=getattr(args, "speech", None) or 0.0,
        vocal_lar_db=getattr(args, "vocal_lar", None),
    )
    for line in (*rep.missing_sources, *(f"track left out: {f}" for f in rep.failed)):
        print(line, file=sys.stderr)
    print(
        f"{rep.out_dir}: {rep.songs} songs ({rep.rendered} rendered, {rep.reused} already there), "
        f"{rep.audio_seconds / 60:.1f} min of audio in {rep.seconds:.1f} s"
        + (f"; stems per source: {dict(sorted(rep.sources.items()))}" if rep.sources else "")
        + (f"; parts left out, no selected source plays their GM program: {rep.unplayable}" if rep.unplayable else "")
        + (f"; {len(rep.failed)} tracks left out (nothing in them could be played)" if rep.failed else "")
    )
    return 0
