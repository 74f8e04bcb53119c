"""Judge a trained model on any dataset the readers know: ``python -m keras_inst.evaluate``.

Window metrics: examples are deterministic musical mixes of the songs (paper §2.3: validation
and testing use musical mixing only), so results are comparable between runs and models.

Song-level metrics (``songs`` in the report, unless ``--no-songs``): each whole song's full
musical mix (:mod:`keras_inst.data.songs`) is cut into windows as ``predict`` does (4-second
windows every 2 s, :mod:`keras_inst.runtime.windows`), and the classes the answer calls present
(:mod:`keras_inst.runtime.presence`: the model's presence rule at its thresholds, else the
default rule; and, to compare, the mean and max of the windows) are scored against the classes
whose stems sound in the song: precision, recall and F1 per class, micro and macro.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from keras_inst.atomic import write_json
from keras_inst.config.io import add_override_argument, load_config
from keras_inst.config.registry import DATASETS
from keras_inst.config.schema import ExperimentConfig
from keras_inst.runtime.artifacts import RUN_CONFIG
from keras_inst.runtime.loader import Artifact, load_artifact


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


class SongPrediction(NamedTuple):
    """One whole song: its key, window probabilities and the classes that sound in it."""

    song: str  # "<dataset>/<song_id>"
    probabilities: np.ndarray  # [n_windows, C]
    classes: frozenset[str]


def song_predictions(model: Any, cache: Any, songs: Sequence, *, peak_normalize: float, window: int,
                     hop: int | None = None) -> list[SongPrediction]:
    """Window probabilities of every song's full mix (:func:`keras_inst.data.songs.song_mixes`),
    ``window`` samples every ``hop`` (default half a window, as predict); ``model``: a
    ``keras.Model`` or an :class:`~keras_inst.runtime.loader.Artifact`."""
    from keras_inst.data.songs import song_mixes
    from keras_inst.runtime.windows import window_probabilities

    predict = model.predict_on_batch if hasattr(model, "predict_on_batch") else model.predict
    hop = window // 2 if hop is None else hop
    out = []
    for mix in song_mixes(cache, songs, peak_normalize=peak_normalize):
        _, probs = window_probabilities(lambda w: np.asarray(predict(w)), mix.audio, window=window, hop=hop)
        out.append(SongPrediction(f"{mix.dataset}/{mix.song_id}", probs, mix.classes))
    return out


def song_level_report(preds: Sequence[SongPrediction], thresholds: np.ndarray, rule: Any,
                      class_names: Sequence[str]) -> dict[str, Any]:
    """Song-level precision / recall / F1 of the presence answer (per class, micro, macro) and,
    beside it, of thresholding the mean and the max of the windows (micro and macro only)."""
    from keras_inst.runtime.presence import closed_order, present_classes, song_level_scores

    truth = [p.classes for p in preds]
    found = [present_classes(p.probabilities, thresholds, rule, class_names) for p in preds]
    out: dict[str, Any] = {"songs": len(preds), "rule": rule.source, "presence": song_level_scores(found, truth, class_names)}
    for name, agg in (("mean", np.mean), ("max", np.max)):
        sets = [closed_order([c for c, v, t in zip(class_names, agg(p.probabilities, axis=0), thresholds, strict=True)
                              if v >= t], class_names) for p in preds]
        scores = song_level_scores(sets, truth, class_names)
        out[name] = {"micro": scores["micro"], "macro": scores["macro"]}
    return out


def presence_entries(model: Any, cfg: ExperimentConfig, cache: Any, *, validation: Sequence, test: Sequence,
                     thresholds: np.ndarray) -> dict[str, Any]:
    """What a training run's report.json gets about presence: ``presence_rule`` calibrated on the
    ``validation`` songs (:func:`keras_inst.runtime.presence.calibrate_presence`, at the tuned
    ``thresholds``), ``presence_calibration`` (per class: k, F1, positive / negative songs) and
    ``songs``: the song-level scores of the ``test`` songs with that rule (:func:`song_level_report`).
    Empty when no validation song has a cached stem."""
    from keras_inst.runtime.artifacts import PRESENCE_RULE_KEY
    from keras_inst.runtime.presence import calibrate_presence
    from keras_inst.taxonomy import CLASSES

    window, norm = cfg.audio.chunk_samples, cfg.mixing.peak_normalize
    val = song_predictions(model, cache, validation, peak_normalize=norm, window=window)
    if not val:
        return {}
    rule, details = calibrate_presence([p.probabilities for p in val], [p.classes for p in val], thresholds, class_names=CLASSES)
    out: dict[str, Any] = {PRESENCE_RULE_KEY: rule.to_json(), "presence_calibration": details}
    tested = song_predictions(model, cache, test, peak_normalize=norm, window=window)
    if tested:
        out["songs"] = song_level_report(tested, thresholds, rule, CLASSES) | {
            "window_seconds": window / cfg.audio.sample_rate, "hop_seconds": window / 2 / cfg.audio.sample_rate}
    return out


def song_level_markdown(songs: dict[str, Any]) -> str:
    """The ``songs`` part of a report as Markdown: the three answers, then presence per class."""
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["", f"## Song level ({songs['songs']} whole songs; presence rule: {songs['rule']})", "",
             "| answer | micro P | micro R | micro F1 | macro P | macro R | macro F1 |", "|---|---|---|---|---|---|---|"]
    for name in ("presence", "mean", "max"):
        m, a = songs[name]["micro"], songs[name]["macro"]
        lines.append(f"| {name} | {f(m['precision'])} | {f(m['recall'])} | {f(m['f1'])} | {f(a['precision'])} | "
                     f"{f(a['recall'])} | {f(a['f1'])} |")
    lines += ["", "| class | songs with it | predicted | precision | recall | F1 |", "|---|---|---|---|---|---|"]
    for c, e in songs["presence"]["per_class"].items():
        lines.append(f"| {c} | {e['positives']} | {e['tp'] + e['fp']} | {f(e['precision'])} | {f(e['recall'])} | {f(e['f1'])} |")
    return "\n".join(lines) + "\n"


def choose_config(art: Artifact, config: str | None, overrides: Sequence[str]) -> tuple[ExperimentConfig, str]:
    """(config for the audio and mixing settings, where it came from) -- in this order: ``--config``;
    the run's ``config.yaml`` beside the model; a shipped model's ``metadata.json`` config; for an
    export, the ``config.yaml`` of the run named by export.json's ``source``; else the ``paper`` config, with a note on stderr (the
    model's input length still has to match it)."""
    from keras_inst.config.io import apply_overrides, from_dict
    from keras_inst.runtime.data_locations import load_run_config

    if config is not None:
        return load_config(config, overrides), str(config)
    # A run's config with its data paths made absolute first (data_locations.json), then the
    # overrides: evaluated from another folder, `--set` must not turn the run's relative data
    # roots and cache into paths under the working directory, and a path given in `--set` is
    # the user's, relative to where they are.
    if art.run_dir is not None:
        return from_dict(apply_overrides(art.config, overrides)), str(art.run_dir / RUN_CONFIG)  # resolved by the loader
    if isinstance(art.metadata.get("config"), dict):  # a shipped model: metadata.json holds its resolved config
        return from_dict(apply_overrides(art.metadata["config"], overrides)), f"{art.path.parent} (metadata.json 'config')"
    source = art.metadata.get("source")
    if source and (Path(source).parent / RUN_CONFIG).is_file():
        run_config = Path(source).parent / RUN_CONFIG
        print(f"note: {art.path} is an export; using the config of the run it was made from: {run_config}", file=sys.stderr)
        return from_dict(apply_overrides(load_run_config(run_config.parent), overrides)), str(run_config)
    print(f"note: {art.path} carries no run config ({RUN_CONFIG}); using the 'paper' config for audio and mixing "
          "settings (pass --config to choose)", file=sys.stderr)
    return load_config("paper", overrides), "paper (fallback: the model carries no run config)"


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
    song_level: bool = True,
    probe: str | Path | None = None,
) -> dict:
    """Evaluate a model on one dataset; returns the report dict (and writes it to ``out_dir``).

    ``song_level``: also the song-level scores of whole songs (module doc; ``report["songs"]``).
    ``probe``: also a real-recording probe's labels.json (``report["probe"]``, :func:`probe_entry`).
    """
    from keras_inst.data.cache.store import ensure_cache
    from keras_inst.data.datasets import read_dataset
    from keras_inst.data.pipeline import musical_eval_dataset
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.metrics import evaluate_predictions
    from keras_inst.training.report import write_report

    if split not in ("test", "all"):
        raise ValueError(f"--split must be 'test' or 'all', got {split!r}")
    art = load_artifact(model_arg)
    cfg, config_source = choose_config(art, config, overrides)
    if art.class_names != list(CLASSES):
        raise ValueError(f"model {art.path} has classes {art.class_names[:3]}...; evaluation needs the {len(CLASSES)} taxonomy classes")
    if (art.input_samples, art.sample_rate) != (cfg.audio.chunk_samples, cfg.audio.sample_rate):
        raise ValueError(f"model {art.path} takes {art.input_samples} samples at {art.sample_rate} Hz but the audio of config "
                         f"{config_source} gives {cfg.audio.chunk_samples} at {cfg.audio.sample_rate} Hz; pass the model's --config")
    model_path, run_dir, thresholds = art.path, art.run_dir, art.threshold_vector()

    songs, reader_report = read_dataset(dataset, root,
                                        problem_stems=cfg.data.problem_stems_for(dataset))
    if not songs:
        raise ValueError(f"{dataset} at {root}: no usable songs ({reader_report.counts})")
    chosen = select_songs(cfg, dataset, songs, split=split, run_dir=run_dir)
    # another corpus than the run's gets a cache of its own: rendered corpora share song ids
    cfg = cfg.replace(data=dataclasses.replace(cfg.data, cache_dir=str(cfg.data.cache_dir_for(dataset, root))))
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
            "config_source": config_source,
            "reader_problems": reader_report.counts,
            "examples_note": f"{cfg.mixing.eval_chunks_per_song} musical chunks per song, seed {seed}",
        },
        "test": evaluate_predictions(y_true, y_prob, thresholds=thresholds),
    }
    if song_level:
        report["songs"] = _song_level(art, cfg, cache, chosen, thresholds)
    if probe is not None:
        report["probe"] = probe_entry(art, probe)
    if out_dir is not None:
        paths = write_report(out_dir, report, title=f"{model_path.name} on {dataset} ({split})")
        if "probe" in report:
            from keras_inst.atomic import write_text
            from keras_inst.training.probe import probe_markdown

            write_text(paths["markdown"], paths["markdown"].read_text(encoding="utf-8") + probe_markdown({"this model": report["probe"]}))
    return report


def probe_entry(art: Artifact, labels: str | Path) -> dict:
    """:func:`keras_inst.training.probe.probe_report` of the model: its clips run as predict runs
    files, at the model's thresholds (else 0.5) and presence rule (else the default)."""
    from keras_inst.runtime.presence import PresenceRule
    from keras_inst.training.probe import probe_report, read_probe_labels

    read_probe_labels(labels, key="--probe")
    names = art.class_names
    t = art.threshold_vector()
    return probe_report(art.predict, labels, sample_rate=art.sample_rate, window=art.input_samples,
                        thresholds=t if t is not None else np.full(len(names), 0.5),
                        rule=art.presence_rule or PresenceRule.default(names), class_names=names)


def _song_level(art: Artifact, cfg: ExperimentConfig, cache: Any, songs: Sequence, thresholds: np.ndarray | None) -> dict:
    """:func:`song_level_report` of the split's whole songs, at the model's thresholds (else 0.5)
    and presence rule (else the default), windows as predict's default."""
    from keras_inst.runtime.presence import PresenceRule

    names = art.class_names
    t = thresholds if thresholds is not None else np.full(len(names), 0.5)
    rule = art.presence_rule or PresenceRule.default(names)
    preds = song_predictions(art.model if art.model is not None else art, cache, songs,
                             peak_normalize=cfg.mixing.peak_normalize, window=art.input_samples)
    if not preds:
        raise ValueError(f"no song to evaluate at song level: none of the {len(songs)} songs has a cached stem")
    return song_level_report(preds, t, rule, names) | {"window_seconds": art.input_samples / art.sample_rate,
                                                       "hop_seconds": art.input_samples / 2 / art.sample_rate}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_inst.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="run directory, .keras file, export directory, SavedModel directory, .tflite file "
                   "or shipped folder (default: the shipped model in keras_inst/release/)")
    p.add_argument("--dataset", required=True, choices=DATASETS.names())
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--split", default="test", choices=("test", "all"))
    p.add_argument("--config", default=None, help="config for audio/mixing settings (default: the run's config.yaml beside the model "
                   "or named by an export's export.json, else paper with a note)")
    add_override_argument(p)
    p.add_argument("--json", dest="json_path", default=None, help="write the report JSON here")
    p.add_argument("--out", default=None, help="write report.json, report.md and plots into this folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-songs", action="store_true",
                   help="skip the song-level scores (whole songs windowed as predict does: the slow part)")
    p.add_argument("--probe", default=None, metavar="LABELS.json",
                   help="also score a real-recording probe (e.g. ../shared/real_dev/labels.json): its clips run as predict "
                        "runs files, per-class ROC-AUC over clips as ../shared/tools/score_clips.py")
    args = p.parse_args(argv)
    try:
        if args.model is None:  # the shipped model, or a plain "none installed: how to get one"
            from keras_inst.runtime.shipped import default_model

            args.model = str(default_model())
        report = evaluate_model(args.model, dataset=args.dataset, root=args.root, split=args.split, config=args.config,
                                overrides=args.overrides, out_dir=args.out, seed=args.seed, song_level=not args.no_songs,
                                probe=args.probe)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from keras_inst.training.probe import probe_markdown
    from keras_inst.training.report import markdown_report

    text = markdown_report(report, title=f"{args.model} on {args.dataset} ({args.split})")
    print(text + (song_level_markdown(report["songs"]) if "songs" in report and "## Song level" not in text else "")
          + (probe_markdown({"this model": report["probe"]}) if "probe" in report else ""))
    if args.json_path:
        write_json(args.json_path, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
