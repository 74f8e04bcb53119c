"""The ``data`` section of an experiment config: datasets, roots, splits, the embedded corpus's
render and its held-out corpus (:class:`DataConfig`; part of :mod:`keras_inst.config.schema`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keras_inst.config.checks import check as _check
from keras_inst.config.checks import check_range
from keras_inst.config.registry import DATASETS

# data.render_vocal_lar_db's bounds (dB either way): beyond, the vocal drowns or is alone
MAX_VOCAL_LAR_DB = 20.0


@dataclass(frozen=True)
class DataConfig:
    """Which datasets, where they are, and how songs are split (paper §2.2: 65/17.5/17.5)."""

    datasets: tuple[str, ...] = ("medleydb", "mixing_secrets", "slakh")
    roots: Mapping[str, str] = field(default_factory=dict)  # dataset name -> root folder
    split: tuple[float, float, float] = (0.65, 0.175, 0.175)
    split_seed: int = 0
    group_by: str = "none"  # none | artist | album
    slakh_official_split: bool = False
    # slakh-utils' splits/problem_stems.json ({track: {stem: reason}}): the stems it lists (white
    # noise, wrong MIDI, missing audio, ...) are skipped and counted in the reader's report.
    slakh_problem_stems: str | None = None
    cache_dir: str = "~/.cache/keras_inst/audio"
    render_songs: int = 0  # >0: render this many embedded-corpus songs into roots.rendered if missing
    render_seed: int = 0
    soundfont: str | None = None  # None: TimGM6mb bundled with pretty_midi
    # [open] beyond the paper: sample sources of the rendered corpus (keras_inst.corpus.sources);
    # () = every installed one. Exclude some to keep them for held-out-source evaluation.
    render_sources: tuple[str, ...] = ()
    render_exclude_sources: tuple[str, ...] = ()
    # [open] beyond the paper, opt-in: the built-in synthesizer (synth programs) and drum machine
    # join the per-stem draw and electric guitars (GM 26-31) go through an amp/cabinet with
    # probability 0.7 (keras_inst.corpus.sources.AMP_PROBABILITY). Another value is another corpus
    # (its own roots.rendered). They also join when named in render_sources.
    render_modern: bool = False
    # [open] beyond the paper, opt-in: a seeded render_generated_share of the rendered songs are
    # generated in these styles (keras_inst.corpus.songwriter: pop, rock, electronic, funk, jazz,
    # electropop arrangements with part-time instruments) instead of arranged music21 scores; () = none.
    # Another value is another corpus (its own roots.rendered).
    render_styles: tuple[str, ...] = ()
    render_generated_share: float = 0.5
    # [open] beyond the paper, opt-in: the chance per rendered song of a spoken-vocal stem over it
    # (keras_inst.corpus.speech: flite speech, labelled voice only, as the taxonomy labels speech
    # and rap); 0 = none. Another value is another corpus (its own roots.rendered).
    render_speech: float = 0.0
    # [open] beyond the paper, opt-in: lead vocals (generated songs' and spoken vocals, an arranged
    # song's solo sung melody) at a lead-to-accompaniment ratio drawn uniformly in [low, high] dB
    # (keras_inst.corpus.vocal_level; produced pop averages ~+1 dB), instead of every stem at the
    # same loudness (a lead ~7 dB under the band); null = off. Another value is another corpus.
    render_vocal_lar_db: tuple[float, float] | None = None
    # [open] beyond the paper: held-out-source evaluation (keras_inst.training.cross_source). After
    # the test split, the run is also judged on held_out_songs OTHER songs (render seed
    # held_out_seed) rendered only with held_out_sources, which training must not use.
    held_out_sources: tuple[str, ...] = ()
    # ... or songs generated in held_out_styles (left out of the training render's render_styles),
    # or played by held_out_engines (opt-in built-in engines, HELD_OUT_ENGINES, left out of the
    # training render): one held-out corpus holds out all that is named (held_out_tag).
    held_out_styles: tuple[str, ...] = ()
    held_out_engines: tuple[str, ...] = ()
    held_out_songs: int = 0
    held_out_seed: int = 1
    held_out_root: str | None = None  # None: <roots.rendered>_heldout_<held_out_tag()>_seed<seed>

    def __post_init__(self) -> None:
        k = "data."
        _check(len(self.datasets) >= 1, k + "datasets", "must name at least one dataset")
        for name in self.datasets:
            DATASETS.check(name, k + "datasets")
        _check(len(set(self.datasets)) == len(self.datasets), k + "datasets", f"names a dataset twice: {list(self.datasets)}")
        for name in self.roots:
            DATASETS.check(name, k + "roots")
        _check(len(self.split) == 3 and all(s >= 0 for s in self.split), k + "split", f"must be three non-negative fractions, got {list(self.split)}")
        _check(abs(sum(self.split) - 1.0) < 1e-6, k + "split", f"fractions must sum to 1, got {sum(self.split)}")
        _check(self.group_by in ("none", "artist", "album"), k + "group_by", f"must be none, artist or album, got {self.group_by!r}")
        _check(self.render_songs >= 0, k + "render_songs", f"must be >= 0, got {self.render_songs}")
        _check(self.held_out_songs >= 0, k + "held_out_songs", f"must be >= 0, got {self.held_out_songs}")
        _check_styles(self.render_styles, self.render_generated_share)
        _check(0.0 <= self.render_speech <= 1.0, k + "render_speech", f"must be a probability in [0, 1], got {self.render_speech}")
        if self.render_vocal_lar_db is not None:
            check_range(self.render_vocal_lar_db, k + "render_vocal_lar_db", lo=-MAX_VOCAL_LAR_DB, hi=MAX_VOCAL_LAR_DB)
        _check_held_out_names(self.held_out_styles, self.held_out_engines)
        if self.holds_out:
            _check(self.held_out_songs > 0, k + "held_out_songs",
                   "must be > 0 when data.held_out_sources, held_out_styles or held_out_engines is set")
            _check(self.held_out_seed != self.render_seed, k + "held_out_seed",
                   f"must differ from data.render_seed ({self.render_seed}): the held-out songs must be other songs")
            used = [s for s in self.held_out_sources if s not in self.render_exclude_sources
                    and (not self.render_sources or s in self.render_sources)]
            _check(not used, k + "held_out_sources", f"{used} would also be rendered for training; "
                   "add them to data.render_exclude_sources")

    def problem_stems_for(self, name: str) -> str | None:
        """The problem-stems file to give ``read_dataset(name, ...)`` (Slakh only)."""
        return self.slakh_problem_stems if name == "slakh" else None

    def held_out_corpus_dir(self) -> Path:
        """Folder of the held-out corpus (``held_out_root``, else beside the training render)."""
        if self.held_out_root:
            return Path(self.held_out_root).expanduser()
        base = self.roots.get("rendered")
        _check(bool(base), "data.held_out_root", "needed when data.roots.rendered is not set")
        name = f"{Path(base).name}_heldout_{self.held_out_tag()}_seed{self.held_out_seed}"
        return Path(base).expanduser().with_name(name)

    def held_out_cache_dir(self) -> Path:
        """Its own audio cache: both corpora name their songs Track00001..., and the cache keys
        stems by (dataset, song/stem), so one shared cache would make each invalidate the other."""
        return Path(self.cache_dir).expanduser() / f"heldout_{self.held_out_tag()}_seed{self.held_out_seed}"

    def cache_dir_for(self, dataset: str, root: str | Path) -> Path:
        """The audio cache for ``dataset`` read from ``root``: ``cache_dir`` when ``root`` is the
        configured root of that dataset, else a folder of its own inside it (``roots/<folder
        name>-<hash of the absolute root>``). Another rendered corpus names its songs
        Track00001... too, and the cache keys stems by (dataset, song/stem): sharing the
        training cache would overwrite the training corpus's entries (see held_out_cache_dir)."""
        import hashlib

        where = Path(root).expanduser().resolve()
        own = self.roots.get(dataset)
        if own and Path(own).expanduser().resolve() == where:
            return Path(self.cache_dir).expanduser()
        tag = hashlib.sha1(str(where).encode("utf-8")).hexdigest()[:10]
        return Path(self.cache_dir).expanduser() / "roots" / f"{where.name}-{tag}"

    @property
    def holds_out(self) -> bool:
        """Whether the run is also judged on a held-out corpus (sources, styles or engines)."""
        return bool(self.held_out_sources or self.held_out_styles or self.held_out_engines)

    def held_out_tag(self) -> str:
        """What the held-out corpus holds out, as a folder-name part: the sources joined by '+'
        (as before styles and engines existed), then ``engine-<name>`` and ``style-<name>``."""
        parts = [*self.held_out_sources, *(f"engine-{e}" for e in self.held_out_engines),
                 *(f"style-{s}" for s in self.held_out_styles)]
        return "+".join(parts)

    def training_styles(self) -> tuple[str, ...]:
        """render_styles without the held-out styles: the styles the training render generates."""
        return tuple(s for s in self.render_styles if s not in self.held_out_styles)

    def training_exclude_sources(self) -> tuple[str, ...]:
        """render_exclude_sources plus the held-out engines: what the training render leaves out."""
        return tuple(dict.fromkeys([*self.render_exclude_sources, *self.held_out_engines]))


# The styles of generated songs (their tables: keras_inst.corpus.songstyles.STYLES); named here
# because the config package must not import the corpus.
# DEFAULT_SONG_STYLES: what a held-out style or engine corpus generates when render_styles names
# none. electropop is opt-in by name, so the corpora rendered before it existed keep their songs.
DEFAULT_SONG_STYLES = ("pop", "rock", "electronic", "funk", "jazz")
SONG_STYLES = (*DEFAULT_SONG_STYLES, "electropop")


# The opt-in sound sources (built-in engines, the recorded organ) a held-out corpus may hold out (keras_inst.corpus.sources
# REGISTRY entries with opt_in; tests/config/test_schema.py checks the two lists agree).
HELD_OUT_ENGINES = ("builtin_synth", "drum_machine", "grandorgue_demo")


def _check_held_out_names(styles: tuple[str, ...], engines: tuple[str, ...]) -> None:
    bad = [s for s in styles if s not in SONG_STYLES]
    _check(not bad and len(set(styles)) == len(styles), "data.held_out_styles",
           f"unknown or repeated style(s) in {list(styles)}; known: {', '.join(SONG_STYLES)}")
    bad = [e for e in engines if e not in HELD_OUT_ENGINES]
    _check(not bad and len(set(engines)) == len(engines), "data.held_out_engines",
           f"unknown or repeated engine(s) in {list(engines)}; known: {', '.join(HELD_OUT_ENGINES)}")


def _check_styles(styles: tuple[str, ...], share: float) -> None:
    bad = [s for s in styles if s not in SONG_STYLES]
    _check(not bad, "data.render_styles", f"unknown style(s) {bad}; known: {', '.join(SONG_STYLES)}")
    _check(len(set(styles)) == len(styles), "data.render_styles", f"names a style twice: {list(styles)}")
    _check(0.0 < share <= 1.0, "data.render_generated_share", f"must be in (0, 1], got {share}")
