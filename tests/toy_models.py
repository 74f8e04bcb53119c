"""Toy models shared by the export and predict tests: a small classifier trained for seconds.

Harmonic tones are "piano" (hence "key"), white noise is "drums" (hence "percussion"); the model
separates them almost perfectly, so differences between runtimes show up in meaningful
probabilities rather than in the ~0.5 outputs of an untrained net.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import keras
import numpy as np

from keras_inst.config.io import dump_config, load_config
from keras_inst.runtime.tf_free import run_python
from keras_inst.taxonomy import CLASSES, multi_hot
from keras_inst.training.train import build_compiled_model

SR = 16000
TOY_OVERRIDES = (
    "audio.chunk_seconds=1.0", "features.n_mels=64", "model.channels=[8,16,16,32]",
    "model.head_units=16", "model.dropout=0.0", "training.transfer=scratch", "training.pretrained=null",
)
# Tuned thresholds of the toy run: piano's is above anything the model outputs, so "tuned" and
# "0.5" give different class sets.
TOY_THRESHOLDS = {c: 0.5 for c in CLASSES} | {"piano": 0.999999, "drums": 0.3}



def toy_audio(rng: np.random.Generator, kind: str, samples: int, sr: int = SR) -> np.ndarray:
    """A harmonic tone (f0 200..1000 Hz) or white noise, peak between -30 and -2 dBFS."""
    t = np.arange(samples) / sr
    if kind == "tone":
        f0 = rng.uniform(200, 1000)
        x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 4))
    else:
        x = rng.standard_normal(samples)
    return (x / np.abs(x).max() * 10 ** rng.uniform(-1.5, -0.1)).astype(np.float32)


def toy_batch(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kinds = ["tone" if i % 2 == 0 else "noise" for i in range(n)]
    x = np.stack([toy_audio(rng, k, SR) for k in kinds])
    y = np.stack([multi_hot(["piano"] if k == "tone" else ["drums"]) for k in kinds])
    return x, y


def train_toy_model() -> tuple[keras.Model, object]:
    """Compiled as keras_inst.training.train does (GroupedOptimizer, lr 0.01), so the saved model needs
    what a real run's model.keras needs to load."""
    cfg = load_config("paper", TOY_OVERRIDES)
    keras.utils.set_random_seed(0)
    model = build_compiled_model(cfg)
    x, y = toy_batch(0, 384)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    return model, cfg


def write_toy_run(run_dir: Path) -> tuple[keras.Model, object]:
    """A finished run directory as keras_inst.training.train leaves it (model, config, report)."""
    model, cfg = train_toy_model()
    run_dir.mkdir(parents=True)
    model.save(run_dir / "model.keras")
    (run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    (run_dir / "report.json").write_text(json.dumps({"thresholds": TOY_THRESHOLDS}), encoding="utf-8")
    return model, cfg


def run_without_tf(code: str, *, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` as the TFLite-only install would (TensorFlow and Keras unimportable)."""
    return run_python(code, tf_free=True, cwd=cwd, timeout=300)


def export_toy_run(base: Path) -> Path:
    """A toy run written into ``base/run`` and exported as float32 TFLite into ``base/export``
    (its checks must pass); returns the export folder."""
    from keras_inst.deploy import export as E

    write_toy_run(base / "run")
    manifest = E.export_model(keras.saving.load_model(base / "run" / "model.keras", compile=False), base / "export",
                              formats=["tflite"], thresholds=TOY_THRESHOLDS)
    assert manifest["all_checks_passed"]
    return base / "export"
