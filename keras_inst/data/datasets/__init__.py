"""Readers for the multitrack datasets (one module each) and their shared record types.

Each reader module exposes ``read(root, *, report, dataset=...) -> list[Song]``; use
:func:`read_dataset` to call one by name. Names map to reader modules in
:data:`keras_inst.config.registry.DATASETS` (``rendered``, the embedded corpus, is written in
Slakh's exact layout and read by the Slakh reader under its own dataset name).
"""

from __future__ import annotations

from pathlib import Path

from keras_inst.config.registry import DATASETS
from keras_inst.data.datasets.base import ReaderReport, Song, Stem

__all__ = ["ReaderReport", "Song", "Stem", "read_dataset"]


def read_dataset(name: str, root: str | Path, *, require_audio: bool = True,
                 problem_stems: str | Path | None = None) -> tuple[list[Song], ReaderReport]:
    """Read dataset ``name`` at ``root``; problems are counted in the report, never fatal.

    ``require_audio=False`` keeps stems whose audio file is missing (metadata-only inspection).
    ``problem_stems`` (Slakh only): slakh-utils' ``problem_stems.json``, whose stems are skipped.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS.names())}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"{name}: root folder {str(root)!r} does not exist")
    module = DATASETS.get(name)
    report = ReaderReport(dataset=name)
    kwargs = {}
    if problem_stems is not None:
        if name != "slakh":
            raise ValueError(f"{name}: problem_stems applies to the slakh dataset only")
        kwargs["problem_stems"] = module.load_problem_stems(problem_stems)
    songs = module.read(root, report=report, dataset=name, require_audio=require_audio, **kwargs)
    return songs, report
