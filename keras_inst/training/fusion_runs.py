"""A finished run fused with the zero-shot tagger after the fact (``scripts/fuse_run.py``).

Apart from :mod:`keras_inst.training.fusion` because it re-runs the run's evaluation
(:func:`keras_inst.training.train.evaluate_run`), which itself calls the fusion at the end of
a run: one way imports.
"""

from __future__ import annotations

from typing import Any


def fuse_existing_run(run_dir: str, out_dir: str, *, tagger: str, weight: float = 0.5, space: str | None = None,
                      partial_weight: float | None = None, probe: str | None = None,
                      model_file: str = "model.keras") -> dict[str, Any]:
    """A complete run's model fused after the fact: ``out_dir`` gets the run's split and data
    locations, its config with ``model.fusion_tagger``/``fusion_weight``/``fusion_space``/
    ``fusion_partial_weight`` (``partial_weight``; None: ``weight`` for every class) set, the
    fused model.keras and a new report (thresholds retuned on the same validation split); ``probe``:
    also set ``evaluation.probe``; ``space``: None keeps the run config's ``model.fusion_space``;
    ``model_file`` (in the run): the classifier to fuse -- a fused run's plain classifier is its
    ``checkpoints/best.keras``. The run's data are found from any working directory (its
    ``data_locations.json``); a failure leaves no ``out_dir`` behind. Returns the report."""
    import dataclasses
    import shutil
    from pathlib import Path

    from keras_inst.config.io import save_config
    from keras_inst.data.held_out import held_out_split
    from keras_inst.data.pipeline import build_data
    from keras_inst.models.fusion_layers import is_fused
    from keras_inst.models.short_chunk import load_model
    from keras_inst.runtime.artifacts import RUN_CONFIG, RUN_REPORT
    from keras_inst.runtime.data_locations import load_run_config
    from keras_inst.training.run_dir import RunDir, start_keras
    from keras_inst.training.train import evaluate_run

    src, out = Path(run_dir), Path(out_dir)
    if not (src / RUN_REPORT).is_file():
        raise ValueError(f"{src}: not a complete run (no {RUN_REPORT})")
    if out.exists():
        raise ValueError(f"{out}: exists; choose a new folder")
    cfg = load_run_config(src)  # its data from any working directory
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, fusion_tagger=tagger, fusion_weight=weight,
                                                             fusion_space=space or cfg.model.fusion_space,
                                                             fusion_partial_weight=partial_weight))
    if probe is not None:
        cfg = dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, probe=probe))
    if not (src / model_file).is_file():
        raise ValueError(f"{src / model_file}: no such model file in the run")
    start_keras(cfg.training)
    model = load_model(src / model_file, compile=False)
    if is_fused(model):
        raise ValueError(f"{src / model_file} is fused already; fuse the run's plain classifier (model_file "
                         "checkpoints/best.keras)")
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("checkpoints", "tensorboard", RUN_REPORT, "report.md"))
    try:
        save_config(cfg, out / RUN_CONFIG)
        with RunDir(out) as rd:
            data = build_data(cfg, run_dir=rd.split_dir(), held_out=held_out_split(cfg))
            return evaluate_run(cfg, model, data, rd, train_seconds=0.0)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-made run left to refuse the next try ("exists")
        raise
