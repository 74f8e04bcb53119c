"""Train/validation/test splits of songs (paper §2.2: random 65 / 17.5 / 17.5 % of the songs).

A split is seeded and independent of the input order. ``group_by="artist"`` (or ``"album"``)
keeps every artist (album) wholly inside one split, avoiding the over-optimism the paper warns
about; ``use_official`` takes Slakh's split folders or MTG-Jamendo's split files instead.
The split is saved as JSON into a run directory so that evaluation uses the same songs.
Split songs of one dataset at a time: the proportions apply to the songs passed in.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keras_inst import atomic
from keras_inst.data.datasets.base import Song

if TYPE_CHECKING:
    from keras_inst.config.schema import ExperimentConfig

SPLIT_FILE = "split.json"  # a run directory's split, reused on resume and by evaluation

logger = logging.getLogger("keras_inst.data.splits")

SPLITS = ("train", "validation", "test")
GROUP_BY = ("none", "artist", "album")
FORMAT = "keras_inst.split/1"


class SongSplit(dict):
    """``{"train": [...], "validation": [...], "test": [...]}`` of Songs (sorted by id), plus
    ``params``: how it was made (seed, fractions, group_by, use_official)."""

    def __init__(self, parts: dict[str, list[Song]], params: dict) -> None:
        super().__init__(parts)
        self.params = dict(params)


def _key(song: Song) -> tuple[str, str]:
    return (song.dataset, song.song_id)


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Exact per-split counts summing to n: floors, then the largest remainders get +1
    (ties to the earlier split). E.g. 330 songs at 0.65/0.175/0.175 -> [214, 58, 58]."""
    raw = [n * f for f in fractions]
    counts = [int(np.floor(r + 1e-9)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    f = tuple(float(x) for x in fractions)
    if len(f) != 3 or any(x < 0 for x in f) or abs(sum(f) - 1.0) > 1e-6:
        raise ValueError(
            "split fractions must be three non-negative numbers summing to 1, "
            f"got {list(fractions)}"
        )
    return f  # type: ignore[return-value]


def split_songs(
    songs: Iterable[Song],
    *,
    fractions: Sequence[float] = (0.65, 0.175, 0.175),
    seed: int = 0,
    group_by: str = "none",
    use_official: bool = False,
    unassigned: str = "error",
) -> SongSplit:
    """Split songs into train/validation/test.

    ``group_by="none"``: a seeded permutation cut at the exact counts of :func:`split_counts`.
    ``"artist"``/``"album"``: songs sharing it form a group (songs without one are singleton
    groups); groups are shuffled, stably ordered largest first, and each goes to the split
    furthest below its target count, so no group straddles two splits and the counts stay
    close to the targets (exact when all groups are singletons).
    ``use_official``: ``Song.official_split``; songs in ``omitted`` (Slakh) are left out; songs
    without one raise ValueError (``unassigned="error"``) or are left out (``"drop"``).
    """
    fractions = _check_fractions(fractions)
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {GROUP_BY}, got {group_by!r}")
    if unassigned not in ("error", "drop"):
        raise ValueError(f"unassigned must be 'error' or 'drop', got {unassigned!r}")
    ordered = sorted(songs, key=_key)  # input order must not matter
    keys = [_key(s) for s in ordered]
    dup = sorted(k for k, n in Counter(keys).items() if n > 1)
    if dup:
        raise ValueError(f"songs listed twice: {dup[:5]}")
    params = {
        "seed": int(seed),
        "fractions": list(fractions),
        "group_by": group_by,
        "use_official": bool(use_official),
    }
    parts: dict[str, list[Song]] = {s: [] for s in SPLITS}

    if use_official:
        return SongSplit(_official_parts(ordered, unassigned), params)

    rng = np.random.default_rng(seed)
    targets = split_counts(len(ordered), fractions)
    if group_by == "none":
        perm = rng.permutation(len(ordered))
        bounds = np.cumsum([0] + targets)
        for i, name in enumerate(SPLITS):
            parts[name] = sorted((ordered[j] for j in perm[bounds[i] : bounds[i + 1]]), key=_key)
        return SongSplit(parts, params)

    return SongSplit(_grouped_parts(ordered, group_by, targets, rng), params)


def _official_parts(ordered: list[Song], unassigned: str) -> dict[str, list[Song]]:
    """``use_official``: each song in its ``official_split``; ``omitted`` songs are left out."""
    lacking = [s.song_id for s in ordered if s.official_split is None]
    if lacking and unassigned == "error":
        raise ValueError(
            f"use_official: {len(lacking)} songs have no official split (e.g. {lacking[:3]}); "
            "pass unassigned='drop' to leave them out"
        )
    parts: dict[str, list[Song]] = {s: [] for s in SPLITS}
    for s in ordered:
        if s.official_split in SPLITS:
            parts[s.official_split].append(s)
        elif s.official_split not in (None, "omitted"):
            raise ValueError(f"song {s.song_id}: unknown official split {s.official_split!r}")
    return parts


def _grouped_parts(ordered: list[Song], group_by: str, targets: list[int],
                   rng: np.random.Generator) -> dict[str, list[Song]]:
    """Whole artist/album groups, largest first, each to the split furthest below its target."""
    groups: dict[str, list[Song]] = {}
    for s in ordered:
        g = getattr(s, group_by)
        # A song without artist/album is its own group; the prefix keeps it apart from real names.
        groups.setdefault(f"name:{g}" if g else f"song:{s.dataset}/{s.song_id}", []).append(s)
    names = sorted(groups)
    shuffled = [names[i] for i in rng.permutation(len(names))]
    shuffled.sort(key=lambda g: -len(groups[g]))  # stable: random order among equal sizes
    parts: dict[str, list[Song]] = {s: [] for s in SPLITS}
    filled = [0, 0, 0]
    for g in shuffled:
        deficits = [targets[i] - filled[i] for i in range(3)]
        i = max(range(3), key=lambda k: (deficits[k], -k))
        parts[SPLITS[i]].extend(groups[g])
        filled[i] += len(groups[g])
    return {k: sorted(v, key=_key) for k, v in parts.items()}


def save_split(split: dict[str, list[Song]], path: str | Path) -> Path:
    """Write the split as JSON: datasets, seed, fractions, group_by, use_official, counts and
    ``splits: {train: {dataset: [song ids]}, ...}``."""
    path = Path(path)
    params = getattr(split, "params", {})
    ids: dict[str, dict[str, list[str]]] = {}
    for name in SPLITS:
        by_ds: dict[str, list[str]] = {}
        for s in split.get(name, []):
            by_ds.setdefault(s.dataset, []).append(s.song_id)
        ids[name] = {d: sorted(v) for d, v in sorted(by_ds.items())}
    doc = {
        "format": FORMAT,
        "datasets": sorted({d for part in ids.values() for d in part}),
        **{k: params.get(k) for k in ("seed", "fractions", "group_by", "use_official")},
        "counts": {name: len(split.get(name, [])) for name in SPLITS},
        "splits": ids,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def load_split(path: str | Path, songs: Iterable[Song], *, dataset: str | None = None) -> SongSplit:
    """Rebuild a saved split from freshly read songs; ValueError names any listed song that is
    missing (a different or incomplete download). Songs not listed are ignored (logged).
    With ``dataset``, only that dataset's part of a multi-dataset split file is rebuilt."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read split file {path}: {e}") from e
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(doc.get("splits"), dict)
    ):
        raise ValueError(f"{path} is not a {FORMAT} split file")
    by_key = {_key(s): s for s in songs}
    parts: dict[str, list[Song]] = {}
    missing: list[str] = []
    for name in SPLITS:
        parts[name] = []
        for ds_name, song_ids in doc["splits"].get(name, {}).items():
            if dataset is not None and ds_name != dataset:
                continue
            for sid in song_ids:
                song = by_key.get((ds_name, sid))
                if song is None:
                    missing.append(f"{ds_name}/{sid} ({name})")
                else:
                    parts[name].append(song)
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} songs of the saved split are not among the songs read, "
            f"e.g. {', '.join(missing[:5])}"
        )
    unlisted = len(by_key) - sum(len(v) for v in parts.values())
    if unlisted:
        logger.info("%s: %d songs read are not in the saved split (ignored)", path, unlisted)
    params = {k: doc.get(k) for k in ("seed", "fractions", "group_by", "use_official")}
    return SongSplit({k: sorted(v, key=_key) for k, v in parts.items()}, params)


# ----------------------------------------------------------------------------------------------
# Splits of an experiment (config-driven; a run directory keeps its split)

def split_dataset(cfg: ExperimentConfig, name: str, songs: Sequence[Song]) -> SongSplit:
    """One dataset's split per ``cfg.data``: MTG-Jamendo's official split, Slakh's when
    ``data.slakh_official_split``, else seeded random (grouped by ``data.group_by``)."""
    official = name == "mtg_jamendo" or (name == "slakh" and cfg.data.slakh_official_split)
    return split_songs(songs, fractions=cfg.data.split, seed=cfg.data.split_seed,
                       group_by=cfg.data.group_by, use_official=official,
                       unassigned="drop" if name == "mtg_jamendo" else "error")


def load_or_make_split(cfg: ExperimentConfig, songs: Mapping[str, Sequence[Song]], *,
                       run_dir: str | Path | None = None) -> SongSplit:
    """``run_dir/split.json`` when it exists (a resumed run keeps its songs); else split each
    dataset (:func:`split_dataset`) and, with a ``run_dir``, save the split there atomically."""
    path = Path(run_dir) / SPLIT_FILE if run_dir is not None else None
    everything = [s for name in songs for s in songs[name]]
    if path is not None and path.is_file():
        return load_split(path, everything)
    parts: dict[str, list[Song]] = {k: [] for k in SPLITS}
    params: dict = {}
    for name, found in songs.items():
        one = split_dataset(cfg, name, found)
        for k in SPLITS:
            parts[k] += one[k]
        params = {**one.params, "use_official": params.get("use_official", False)
                  or one.params["use_official"]}  # seed/fractions/group_by are shared
    split = SongSplit({k: sorted(v, key=lambda s: (s.dataset, s.song_id))
                       for k, v in parts.items()}, params)
    if path is not None:
        atomic.write_with(path, lambda tmp: save_split(split, tmp))
    return split
