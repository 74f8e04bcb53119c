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
from functools import lru_cache
from pathlib import Path

import numpy as np

from keras_inst import arrange
from keras_inst.arrange import Score

RENDER_VERSION = 1
TARGET_LUFS = -13.0  # Slakh's normalization_factor
TARGET_PEAK_DB = -1.0  # Slakh's target_peak
LEVEL_SPREAD_DB = 3.0  # per-stem random level offset, uniform in +-this
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
# Ensembles and the corpus plan (pure: no music21, no audio).


@dataclass(frozen=True)
class _Slot:
    roles: tuple[str, ...]  # one is chosen per song (see arrange.ROLES)
    programs: tuple[int, ...]  # GM program, one chosen per song; 128 = drums
    p: float = 1.0  # probability that the song has this stem


@dataclass(frozen=True)
class Ensemble:
    name: str
    kinds: tuple[str, ...]  # score kinds it can play (arrange.SOURCE_KINDS)
    style: str  # accompaniment and drum style
    slots: tuple[_Slot, ...]


def _s(roles: str, *programs: int, p: float = 1.0) -> _Slot:
    return _Slot(tuple(roles.split("|")), programs, p)


ENSEMBLES: tuple[Ensemble, ...] = (
    Ensemble("rock_band", ("folk", "chorale"), "rock", (
        _s("melody", 53), _s("strum", 29, 30, 27), _s("bass_roots", 33, 34),
        _s("drums", 128), _s("comp", 0, 1, 16, 18, p=0.5))),
    Ensemble("pop_band", ("folk", "chorale"), "pop", (
        _s("melody", 53), _s("strum|arp", 25, 24), _s("bass_roots", 33, 35, 32),
        _s("comp", 0, 1, 2), _s("drums", 128, p=0.7), _s("pad", 89, 90, 92, p=0.3))),
    Ensemble("string_quartet", ("chorale", "quartet", "madrigal"), "classical", (
        _s("melody", 40), _s("upper", 40), _s("inner", 41), _s("bass", 42))),
    Ensemble("wind_quintet", ("chorale", "quartet", "madrigal"), "classical", (
        _s("melody", 73, 68, 72), _s("upper", 71, 68, 69), _s("inner", 60), _s("bass", 70, 67))),
    Ensemble("brass_quartet", ("chorale", "madrigal"), "classical", (
        _s("melody", 56, 59), _s("upper", 56, 60), _s("inner", 60, 57), _s("bass", 57, 58))),
    Ensemble("choir", ("chorale", "madrigal"), "classical", (
        _s("melody", 53), _s("upper", 52), _s("inner", 52), _s("bass", 52),
        _s("pad", 19, 16, 20, p=0.4))),
    Ensemble("hymn", ("chorale",), "classical", (
        _s("melody", 53), _s("all_parts", 0, 1, 19), _s("bass", 42, 43, p=0.3))),
    Ensemble("jazz_combo", ("folk", "chorale"), "jazz", (
        _s("melody", 65, 66, 64, 56, 26), _s("bass_walk", 32), _s("jazz_comp", 0, 1, 4),
        _s("drums", 128))),
    Ensemble("synth_pop", ("folk", "chorale"), "dance", (
        _s("melody", 80, 81, 84, 54), _s("bass_roots", 38, 39), _s("pad", 88, 89, 90, 91, 95),
        _s("comp", 4, 5, p=0.6), _s("drums", 128))),
    Ensemble("piano_trio", ("chorale", "quartet", "folk"), "classical", (
        _s("melody", 40), _s("bass", 42), _s("arp|comp", 0, 1))),
    Ensemble("folk_band", ("folk",), "folk", (
        _s("melody", 40), _s("strum", 24, 25), _s("bass_roots", 32, 33),
        _s("melody_double", 73, 78, 74, p=0.4), _s("drums", 128, p=0.4))),
    Ensemble("funk_band", ("folk", "chorale"), "funk", (
        _s("melody", 61, 56, 62, 63), _s("strum", 28, 27), _s("bass_roots", 36, 37, 33),
        _s("comp", 4, 5), _s("drums", 128))),
)


@dataclass(frozen=True)
class StemPlan:
    name: str  # "S00", ...
    role: str
    program: int  # GM program 0..127, 128 = drums
    level_db: float  # offset from TARGET_LUFS

    @property
    def is_drum(self) -> bool:
        return self.program == 128


@dataclass(frozen=True)
class TrackPlan:
    index: int  # 1-based: Track00001 ...
    seed: int  # per-track seed from (corpus seed, index)
    ensemble: str
    style: str
    source_kind: str
    stems: tuple[StemPlan, ...]

    @property
    def name(self) -> str:
        return f"Track{self.index:05d}"


def _track_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def plan_track(index: int, seed: int) -> TrackPlan:
    """The ensemble, source kind and stems of track ``index`` (1-based); independent of songs.

    Ensembles follow a shuffled round robin (every block of len(ENSEMBLES) tracks holds each
    ensemble once), so every class is present in many songs of any corpus of >= 12 songs.
    """
    if index < 1:
        raise ValueError(f"track index must be >= 1, got {index}")
    n = len(ENSEMBLES)
    block = (index - 1) // n
    order = np.random.default_rng([seed, block, 0xE5]).permutation(n)
    ens = ENSEMBLES[int(order[(index - 1) % n])]
    tseed = _track_seed(seed, index)
    rng = np.random.default_rng([tseed, 1])
    kind = str(rng.choice(ens.kinds))
    stems = []
    for slot in ens.slots:
        role, program = str(rng.choice(slot.roles)), int(rng.choice(slot.programs))
        level = float(rng.uniform(-LEVEL_SPREAD_DB, LEVEL_SPREAD_DB))
        if rng.random() < slot.p:
            stems.append(StemPlan(f"S{len(stems):02d}", role, program, round(level, 3)))
    return TrackPlan(index, tseed, ens.name, ens.style, kind, tuple(stems))


def plan_corpus(songs: int, seed: int) -> list[TrackPlan]:
    """Plans of tracks 1..songs (pure and fast; what render_corpus renders)."""
    if songs < 1:
        raise ValueError(f"songs must be >= 1, got {songs}")
    return [plan_track(i, seed) for i in range(1, songs + 1)]


# ---------------------------------------------------------------------------------------------
# Synthesis and loudness.


def default_soundfont() -> Path:
    """TimGM6mb.sf2 as bundled in pretty_midi's package folder."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@lru_cache(maxsize=2)
def _soundfont_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def synthesize(
    notes: list[tuple[float, float, int, int]],
    *,
    program: int,
    soundfont: str | Path,
    sample_rate: int,
    n_samples: int,
) -> tuple[np.ndarray, str]:
    """Render (onset_s, duration_s, key, velocity) notes on one GM program -> (mono float32 [n], preset).

    A fresh synthesizer per stem keeps stems independent of each other and of render order.
    """
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(_soundfont_bytes(str(soundfont)))
    drum = program == 128
    try:
        synth.program_select(0, sfid, 0, 0 if drum else program, is_drums=drum)
    except RuntimeError as e:
        raise ValueError(f"soundfont {soundfont}: no preset for GM program {program} ({e})") from e
    preset = synth.sfpreset_name(sfid, 128 if drum else 0, 0 if drum else program) or "?"
    events = []
    for on, dur, key, vel in notes:
        a = int(round(on * sample_rate))
        b = max(a + 1, int(round((on + dur) * sample_rate)))
        events += [(a, 1, key, vel), (b, 0, key, 0)]
    events.sort(key=lambda e: (e[0], e[1], e[2]))  # note-offs before note-ons at one sample
    buf = memoryview(bytearray(n_samples * 8))  # interleaved stereo float32
    pos = 0
    for sample, is_on, key, vel in events:
        sample = min(sample, n_samples)
        if sample > pos:
            synth.generate_simple(sample - pos, buffer=buf[pos * 8 : sample * 8])
            pos = sample
        if is_on:
            synth.noteon(0, key, vel)
        else:
            synth.noteoff(0, key)
    if pos < n_samples:
        synth.generate_simple(n_samples - pos, buffer=buf[pos * 8 :])
    stereo = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)  # [n, 2]
    return stereo.mean(axis=1).astype(np.float32), preset


def _k_weighting(fs: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770 K-weighting (shelf + high-pass) designed for any rate from its analog prototype.

    Constants from B. De Man's derivation; they reproduce the spec's 48 kHz coefficients exactly.
    """
    k = np.tan(np.pi * 1681.974450955533 / fs)
    q, vh = 0.7071752369554196, 10 ** (3.999843853973347 / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (
        np.array([vh + vb * k / q + k * k, 2 * (k * k - vh), vh - vb * k / q + k * k]) / a0,
        np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]),
    )
    k, q = np.tan(np.pi * 38.13547087602444 / fs), 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = (np.array([1.0, -2.0, 1.0]), np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    return [shelf, high_pass]


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770-4 gated integrated loudness (LUFS) of mono audio; -inf when silent."""
    from scipy.signal import lfilter

    y = np.asarray(x, dtype=np.float64)
    for b, a in _k_weighting(sample_rate):
        y = lfilter(b, a, y)
    block, hop = int(0.4 * sample_rate), int(0.1 * sample_rate)
    c = np.concatenate([[0.0], np.cumsum(y * y)])
    starts = np.arange(0, max(1, len(y) - block + 1), hop)
    z = (c[np.minimum(starts + block, len(y))] - c[starts]) / min(block, len(y))  # mean square per block
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10 * np.log10(z)
    z = z[lk > -70.0]
    if z.size == 0:
        return float("-inf")
    rel = -0.691 + 10 * np.log10(z.mean()) - 10.0
    with np.errstate(divide="ignore"):
        z = z[-0.691 + 10 * np.log10(z) > rel]
    return float(-0.691 + 10 * np.log10(z.mean()))


# ---------------------------------------------------------------------------------------------
# One track.


def _render_track(plan: TrackPlan, out_dir: Path, params: dict) -> dict:
    """Arrange, synthesize and write one track into a temp folder renamed into place."""
    import pretty_midi
    import soundfile as sf
    import yaml

    sr, soundfont = params["sample_rate"], params["soundfont"]
    rng = np.random.default_rng([plan.seed, 2])
    score: Score = arrange.load_source(plan.source_kind, rng)
    song = arrange.arrange(score, plan, rng=rng, max_seconds=params["max_seconds"])
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
        "soundfont_sha1": hashlib.sha1(_soundfont_bytes(str(soundfont))).hexdigest(),
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
