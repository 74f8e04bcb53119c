"""Judge a trained model on any dataset the readers know: ``python -m keras_inst.evaluate``.

Examples are deterministic musical mixes of the songs (paper §2.3: validation and testing use
musical mixing only), so results are comparable between runs and models.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_inst.atomic import write_json
from keras_inst.config.io import add_override_argument, load_config
from keras_inst.config.registry import DATASETS
from keras_inst.config.schema import ExperimentConfig
from keras_inst.runtime.artifacts import RUN_CONFIG
from keras_inst.runtime.loader import load_artifact


def select_songs(cfg: ExperimentConfig, dataset: str, songs: list, *, split: str, run_dir: Path | None) -> list:
    """The songs to evaluate: all, or the test split -- the run's own saved split when the run
    used this dataset, else the split the training pipeline would make (same config and seed)."""
    if split == "all":
        return songs
    from keras_inst.data.splits import SPLIT_FILE, load_split, split_dataset

    split_file = run_dir / SPLIT_FILE if run_dir is not None else None
    if split_file is not None and split_file.is_file():
        saved = json.loads(split_file.read_text(encoding="utf-8"))
        if dataset in saved.get("datasets", []):
            return load_split(split_file, songs, dataset=dataset)["test"]
    return split_dataset(cfg, dataset, songs)["test"]


def predict_dataset(model, ds) -> tuple[np.ndarray, np.ndarray]:
    """(labels [n, C], probabilities [n, C]) of a finite dataset of (waveform, labels) batches.

    ``model``: a ``keras.Model`` or a loaded :class:`~keras_inst.runtime.loader.Artifact`.
    """
    predict = model.predict_on_batch if hasattr(model, "predict_on_batch") else model.predict
    ys, ps = [], []
    for x, y in ds:
        ps.append(np.asarray(predict(np.asarray(x))))
        ys.append(np.asarray(y))
    return np.concatenate(ys), np.concatenate(ps)


def evaluate_model(
    model_arg: str | Path,
    *,
    dataset: str,
    root: str | Path,
    split: str = "test",
    config: str | None = None,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    seed: int = 0,
) -> dict:
    """Evaluate a model on one dataset; returns the report dict (and writes it to ``out_dir``)."""
    from keras_inst.data.cache.store import ensure_cache
    from keras_inst.data.datasets import read_dataset
    from keras_inst.data.pipeline import musical_eval_dataset
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.metrics import evaluate_predictions
    from keras_inst.training.report import write_report

    if split not in ("test", "all"):
        raise ValueError(f"--split must be 'test' or 'all', got {split!r}")
    art = load_artifact(model_arg)
    cfg = art.config
    if config is not None or overrides or cfg is None:
        run_config = art.run_dir / RUN_CONFIG if art.run_dir is not None else "paper"
        cfg = load_config(config or run_config, overrides)
    if art.class_names != list(CLASSES):
        raise ValueError(f"model {art.path} has classes {art.class_names[:3]}...; evaluation needs the {len(CLASSES)} taxonomy classes")
    if (art.input_samples, art.sample_rate) != (cfg.audio.chunk_samples, cfg.audio.sample_rate):
        raise ValueError(f"model {art.path} takes {art.input_samples} samples at {art.sample_rate} Hz but the config's audio gives "
                         f"{cfg.audio.chunk_samples} at {cfg.audio.sample_rate} Hz; pass the model's --config")
    model_path, run_dir, thresholds = art.path, art.run_dir, art.threshold_vector()

    songs, reader_report = read_dataset(dataset, root,
                                        problem_stems=cfg.data.problem_stems_for(dataset))
    if not songs:
        raise ValueError(f"{dataset} at {root}: no usable songs ({reader_report.counts})")
    chosen = select_songs(cfg, dataset, songs, split=split, run_dir=run_dir)
    cache = ensure_cache(cfg, chosen)
    ds = musical_eval_dataset(cfg, cache, chosen, seed=seed, batch_size=cfg.training.batch_size)
    y_true, y_prob = predict_dataset(art.model if art.model is not None else art, ds)
    report = {
        "meta": {
            "model": str(model_path),
            "model_kind": art.kind,
            "thresholds": art.thresholds_source or "none tuned (F1 at 0.5 only)",
            "dataset": f"{dataset} at {root}",
            "split": split,
            "songs": len(chosen),
            "config": cfg.name,
            "reader_problems": reader_report.counts,
            "examples_note": f"{cfg.mixing.eval_chunks_per_song} musical chunks per song, seed {seed}",
        },
        "test": evaluate_predictions(y_true, y_prob, thresholds=thresholds),
    }
    if out_dir is not None:
        write_report(out_dir, report, title=f"{model_path.name} on {dataset} ({split})")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_inst.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="run directory, .keras file, export directory, SavedModel directory or .tflite file")
    p.add_argument("--dataset", required=True, choices=DATASETS.names())
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--split", default="test", choices=("test", "all"))
    p.add_argument("--config", default=None, help="config for audio/mixing settings (default: the run's config.yaml beside the model, or paper)")
    add_override_argument(p)
    p.add_argument("--json", dest="json_path", default=None, help="write the report JSON here")
    p.add_argument("--out", default=None, help="write report.json, report.md and plots into this folder")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        report = evaluate_model(args.model, dataset=args.dataset, root=args.root, split=args.split, config=args.config, overrides=args.overrides, out_dir=args.out, seed=args.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from keras_inst.training.report import markdown_report

    print(markdown_report(report, title=f"{args.model} on {args.dataset} ({args.split})"))
    if args.json_path:
        write_json(args.json_path, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
