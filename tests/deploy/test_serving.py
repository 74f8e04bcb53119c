"""Serving model: SavedModel signatures (checked with saved_model_cli), metadata, reload parity with
Keras, and the model facts export and predict read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from toy_models import TOY_OVERRIDES, TOY_THRESHOLDS, toy_batch

from keras_inst.config.io import load_config
from keras_inst.deploy.serving import save_serving_model
from keras_inst.models.short_chunk import build_model
from keras_inst.runtime.keras_model import dual_output_model, model_info
from keras_inst.taxonomy import CLASSES


@pytest.fixture(scope="module")
def toy_model():
    """The toy classifier's architecture (1-s windows, 32-d embedding), untrained: the signatures
    and the parity with Keras do not depend on what the weights learned."""
    keras.utils.set_random_seed(0)
    return build_model(load_config("paper", TOY_OVERRIDES))


@pytest.fixture(scope="module")
def saved_model(toy_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serving")
    (out / "labels.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    save_serving_model(dual_output_model(toy_model), out / "saved_model", class_names=CLASSES,
                       sample_rate=16000, thresholds=TOY_THRESHOLDS, labels_file=out / "labels.txt")
    return out / "saved_model"


def _cli_show(saved_model: Path, signature: str) -> str:
    cli = Path(sys.executable).with_name("saved_model_cli")
    assert cli.is_file(), f"saved_model_cli not found next to {sys.executable}"
    res = subprocess.run(
        [str(cli), "show", "--dir", str(saved_model), "--tag_set", "serve", "--signature_def", signature],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def _tensor_infos(text: str) -> dict[str, tuple[str, str]]:
    """{'inputs/waveform': ('DT_FLOAT', '(-1, 16000)'), ...} from saved_model_cli output."""
    pat = re.compile(r"(inputs|outputs)\['(\w+)'\] tensor_info:\s*dtype: (\w+)\s*shape: ([^\n]+)")
    return {f"{kind}/{name}": (dtype, shape.strip()) for kind, name, dtype, shape in pat.findall(text)}


def test_saved_model_signatures_via_saved_model_cli(saved_model):
    serving = _tensor_infos(_cli_show(saved_model, "serving_default"))
    assert serving == {
        "inputs/waveform": ("DT_FLOAT", "(-1, 16000)"),
        "outputs/probabilities": ("DT_FLOAT", "(-1, 15)"),
        "outputs/embeddings": ("DT_FLOAT", "(-1, 32)"),
    }
    assert (saved_model / "assets" / "labels.txt").read_text().split() == list(CLASSES)


def test_saved_model_reloads_and_matches_keras(saved_model, toy_model):
    import tensorflow as tf

    model = toy_model
    loaded = tf.saved_model.load(str(saved_model))
    fn = loaded.signatures["metadata"]
    # TF Serving rejects signatures without inputs, hence the unused scalar "request".
    assert {k: (v.dtype, v.shape.as_list()) for k, v in fn.structured_input_signature[1].items()} == {"request": (tf.int32, [])}
    assert {k: (v.dtype, v.shape.as_list()) for k, v in fn.structured_outputs.items()} == {
        "class_names": (tf.string, [15]),
        "sample_rate": (tf.int32, []),
        "input_samples": (tf.int32, []),
        "thresholds": (tf.float64, [15]),
    }
    meta = fn(request=tf.constant(0))
    assert [s.decode() for s in meta["class_names"].numpy()] == list(CLASSES)
    assert int(meta["sample_rate"]) == 16000 and int(meta["input_samples"]) == 16000
    np.testing.assert_allclose(meta["thresholds"].numpy(), [TOY_THRESHOLDS[c] for c in CLASSES], rtol=1e-6)
    x, _ = toy_batch(2, 6)
    got = loaded.signatures["serving_default"](waveform=tf.constant(x))
    np.testing.assert_allclose(got["probabilities"].numpy(), model.predict(x, verbose=0), atol=1e-6)
    emb = keras.Model(model.input, model.get_layer("backbone")(model.get_layer("frontend")(model.input)))
    np.testing.assert_allclose(got["embeddings"].numpy(), emb.predict(x, verbose=0), atol=1e-5)


def test_model_info(toy_model):
    assert model_info(toy_model) == {"sample_rate": 16000, "input_samples": 16000, "num_classes": 15, "embedding_dim": 32}
    with pytest.raises(ValueError, match="no 'frontend' sub-model"):
        model_info(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="plain"))
