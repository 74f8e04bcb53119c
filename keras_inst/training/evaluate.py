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

from keras_inst.config.io import add_override_argument, load_config
from keras_inst.config.schema import DATASET_NAMES, ExperimentConfig


def resolve_model(model_arg: str | Path, *, config: str | None = None, overrides: Sequence[str] = ()) -> tuple[Path, ExperimentConfig, Path | None, dict | None]:
    """(model file, config, run dir or None, tuned thresholds or None) for a run dir or a .keras file."""
    p = Path(model_arg).expanduser()
    if p.is_dir():
        model_path = p / "model.keras"
        if not model_path.is_file():
            raise ValueError(f"{p}: not a finished run directory (no model.keras); train it first or pass a .keras file")
        cfg = load_config(config or p / "config.yaml", overrides)
        thresholds = None
        if (p / "report.json").is_file():
            thresholds = json.loads((p / "report.json").read_text()).get("thresholds")
        return model_path, cfg, p, thresholds
    if p.suffix == ".keras" and p.is_file():
        return p, load_config(config or "paper", overrides), None, None
    raise ValueError(f"--model {str(model_arg)!r}: expected a run directory or a .keras file")


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
    """(labels [n, C], probabilities [n, C]) of a finite dataset of (waveform, labels) batches."""
    ys, ps = [], []
    for x, y in ds:
        ps.append(model.predict_on_batch(x))
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
    from keras_inst.models.short_chunk import load_model
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.metrics import evaluate_predictions
    from keras_inst.training.report import write_report

    if split not in ("test", "all"):
        raise ValueError(f"--split must be 'test' or 'all', got {split!r}")
    model_path, cfg, run_dir, thresholds = resolve_model(model_arg, config=config, overrides=overrides)
    model = load_model(model_path)
    expected = model.inputs[0].shape[-1]
    if expected != cfg.audio.chunk_samples:
        raise ValueError(f"model {model_path} takes {expected} samples but the config's audio gives {cfg.audio.chunk_samples}; pass the model's --config")

    songs, reader_report = read_dataset(dataset, root,
                                        problem_stems=cfg.data.problem_stems_for(dataset))
    if not songs:
        raise ValueError(f"{dataset} at {root}: no usable songs ({reader_report.counts})")
    chosen = select_songs(cfg, dataset, songs, split=split, run_dir=run_dir)
    cache = ensure_cache(cfg, chosen)
    ds = musical_eval_dataset(cfg, cache, chosen, seed=seed, batch_size=cfg.training.batch_size)
    y_true, y_prob = predict_dataset(model, ds)
    t = np.array([thresholds[c] for c in CLASSES]) if thresholds else None
    report = {
        "meta": {
            "model": str(model_path),
            "dataset": f"{dataset} at {root}",
            "split": split,
            "songs": len(chosen),
            "config": cfg.name,
            "reader_problems": reader_report.counts,
            "examples_note": f"{cfg.mixing.eval_chunks_per_song} musical chunks per song, seed {seed}",
        },
        "test": evaluate_predictions(y_true, y_prob, thresholds=t),
    }
    if out_dir is not None:
        write_report(out_dir, report, title=f"{model_path.name} on {dataset} ({split})")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_inst.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="run directory or .keras file")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--split", default="test", choices=("test", "all"))
    p.add_argument("--config", default=None, help="config for audio/mixing settings (default: the run's, or paper)")
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
        Path(args.json_path).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
