"""The waveforms an export calibrates int8 on and checks every artifact with.

With a run directory whose data can be read (paths resolved by
:mod:`keras_inst.runtime.data_locations`, so from any working directory), :func:`run_data`
takes the validation split for calibration and the test split, with labels, for the checks;
otherwise :func:`export_data` falls back to synthetic tone/noise mixes and says why (the note
names the missing path and how to make it found). :func:`fill_check_data` completes what a
caller of :func:`keras_inst.deploy.export.export_model` left out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst.deploy.audio_io import synthetic_mixes
from keras_inst.runtime.data_locations import missing_data_hint
from keras_inst.runtime.keras_model import model_info


def run_data(cfg: Any, run_dir: Path, *, calibration: int, check: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(validation waveforms for calibration, test waveforms, test labels, note) of a run's data."""
    from keras_inst.data.pipeline import build_data

    data = build_data(cfg, run_dir=run_dir)

    def take(ds: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys, got = [], [], 0
        for x, y in ds:
            xs.append(np.asarray(x))
            ys.append(np.asarray(y))
            got += len(xs[-1])
            if got >= n:
                break
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]

    cal, _ = take(data.validation, calibration)
    x, y = take(data.test, check)
    return cal, x, y, f"run data of {run_dir}: calibration on the validation split, checks on the test split ({', '.join(cfg.data.datasets)})"


def export_data(src: Any, *, synthetic: bool, int8: bool, calibration: int, check: int) -> tuple[Any, Any, Any, str]:
    """(calibration waveforms or None, check waveforms, check labels or None, note) for the
    model :func:`keras_inst.runtime.loader.load_artifact` loaded as ``src``."""
    why_not = "--data synthetic" if synthetic else ("no config.yaml" if src.config is None else missing_data_hint(src.config, src.run_dir))
    if why_not is None and src.run_dir is not None:
        try:
            cal, xs, ys, note = run_data(src.config, src.run_dir, calibration=calibration, check=check)
            if len(cal) < min(32, calibration):
                print(f"note: the validation split gives only {len(cal)} calibration waveforms; int8 ranges may be poor", file=sys.stderr)
            return cal, xs, ys, note
        except (ValueError, OSError) as e:  # e.g. a moved dataset: fall back, say why
            why_not = f"reading the run's data failed: {e}"
    if not synthetic:
        print(f"note: {why_not or 'no run directory'}; using synthetic mixes", file=sys.stderr)
    info = model_info(src.model)
    samples, sr = info["input_samples"], info["sample_rate"]
    xs = synthetic_mixes(check, samples=samples, sample_rate=sr, seed=1)
    cal = synthetic_mixes(calibration, samples=samples, sample_rate=sr, seed=0) if int8 else None
    return cal, xs, None, f"synthetic tone/noise mixes ({why_not or 'no run directory'})"


def fill_check_data(info: dict, check_inputs: np.ndarray | None, check_labels: np.ndarray | None,
                    representative: np.ndarray | None, *, int8: bool, data_note: str) -> tuple[Any, Any, Any, dict[str, str]]:
    """(check inputs, labels, calibration waveforms, export.json notes), synthetic where not given."""
    samples, sr = info["input_samples"], info["sample_rate"]
    if check_inputs is None:
        check_inputs, check_labels = synthetic_mixes(64, samples=samples, sample_rate=sr, seed=1), None
        notes = {"check": "synthetic tone/noise mixes (64, unlabelled)"}
    else:
        notes = {"check": data_note or f"{len(check_inputs)} waveforms given by the caller"}
    if representative is None and int8:
        representative = synthetic_mixes(64, samples=samples, sample_rate=sr, seed=0)
        notes["calibration"] = "synthetic tone/noise mixes (64)"
    elif representative is not None:
        notes["calibration"] = f"{len(representative)} waveforms: {data_note or 'given by the caller'}"
    return check_inputs, check_labels, representative, notes
