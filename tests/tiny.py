"""Shared pieces of the end-to-end training tests: a tiny model config and a small rendered corpus.

Imported as a plain module (tests/ is on sys.path under pytest, like cache_corpus and toy_models).
"""

from __future__ import annotations

from pathlib import Path

# A model small enough for seconds-long runs on 2 CPU cores: 1-s chunks, 4 narrow blocks of the
# short-chunk CNN from scratch (the demo's musicnn backbone and held-out render switched off).
TINY_MODEL = [
    "model.architecture=short_chunk_cnn",
    "training.transfer=scratch",
    "training.pretrained=null",
    "training.trainable_blocks=null",  # partly frozen and distilled fine-tuning (the release recipe's)
    "training.distill_weight=0",       # need a pre-trained musicnn backbone
    "model.fusion_tagger=null",  # the demo fuses with musicnn's MTT musicnn tagger, which needs 3-s windows
    "features.mel_scale=htk",
    "features.mel_norm=null",
    "features.compression=db",
    "data.held_out_sources=[]",
    "data.render_exclude_sources=[]",
    "audio.chunk_seconds=1.0",
    "features.n_mels=64",
    "model.channels=[8,16,16,32]",
    "model.head_units=16",
    "training.batch_size=8",
]


def tiny_overrides(*, steps: int, epochs: int, eval_chunks: int) -> list[str]:
    """``--set`` overrides of a tiny run on an already rendered corpus (``data.render_songs=0``)."""
    return [*TINY_MODEL, f"training.steps_per_epoch={steps}", f"training.epochs={epochs}",
            f"mixing.eval_chunks_per_song={eval_chunks}", "data.render_songs=0"]


def rendered_with_cache(base: Path, *, songs: int, seconds: float) -> tuple[Path, Path]:
    """Render ``songs`` songs of ``seconds`` into ``base/rendered`` and cache them (16 kHz, hop
    256, as the demo config reads them) into ``base/cache``; returns (root, cache)."""
    from keras_inst.corpus.render import render_corpus
    from keras_inst.data.cache.build import build_cache
    from keras_inst.data.datasets import read_dataset

    root, cache = base / "rendered", base / "cache"
    render_corpus(root, songs=songs, seed=0, max_seconds=seconds, workers=1, progress=False)
    found, _ = read_dataset("rendered", root)
    build_cache(found, cache, sample_rate=16000, workers=1, progress=False, envelope_hop=256)
    return root, cache
