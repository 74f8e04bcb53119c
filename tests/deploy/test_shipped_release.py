"""The model installed in the package (keras_inst/release/): CI does not retrain it, it checks it.

Skipped, with the reason, while no release is installed (``keras-inst release --install`` makes
one; ``KERAS_INST_RELEASE=FOLDER`` checks a shipped folder kept elsewhere instead). When one is: every file matches its sha256 in metadata.json, every shipped form gives the
outputs recorded on the fixed inputs at release time (within the tolerances metadata.json
states), and predict analyses a real-format fixture file with it, TensorFlow-free.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from toy_models import run_without_tf

from keras_inst.runtime.shipped import (
    SHIPPED_METADATA,
    is_shipped_dir,
    read_shipped,
    shipped_dir,
)
from keras_inst.taxonomy import CLASSES, FAMILY_OF

FOLDER = shipped_dir()  # the package's keras_inst/release/ unless $KERAS_INST_RELEASE names another
pytestmark = pytest.mark.skipif(
    not is_shipped_dir(FOLDER),
    reason=f"no shipped model installed ({FOLDER / SHIPPED_METADATA} missing): `keras-inst release --install` makes one",
)


def test_the_installed_files_match_their_hashes():
    meta = read_shipped(FOLDER)  # raises naming a file whose sha256 or size differ
    assert meta["class_names"] == list(CLASSES)
    assert sum(r["bytes"] for r in meta["files"].values()) <= 30_000_000


def test_every_shipped_form_gives_its_recorded_outputs():
    from keras_inst.deploy.release import recorded_inputs, shipped_outputs

    meta = read_shipped(FOLDER)
    rec = meta["recorded_outputs"]
    got = shipped_outputs(FOLDER, recorded_inputs(meta["input_samples"], meta["sample_rate"]))
    assert set(got) == set(rec["probabilities"])
    for form, rows in rec["probabilities"].items():
        np.testing.assert_allclose(got[form], rows, atol=rec["tolerance"][form], err_msg=form)


def test_predict_analyses_a_fixture_without_tensorflow(fixtures_dir, tmp_path):
    wav = fixtures_dir / "slakh" / "babyslakh_16k" / "Track00001" / "mix.wav"
    code = f"""
from keras_inst.deploy.predict import main
rc = main([{str(wav)!r}, "--format", "json", "--output", {str(tmp_path / "p.json")!r}])
print("RC", rc, any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules))
"""
    proc = run_without_tf(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "RC 0 False"
    doc = json.loads((tmp_path / "p.json").read_text())
    # The same shipped file (pytest may import the checkout and the subprocess the installed copy).
    used = Path(doc["model"])
    assert used.name == "model_float16.tflite" and used.read_bytes() == (FOLDER / "model_float16.tflite").read_bytes()
    (f,) = doc["files"]
    assert f["windows"] == 1 and set(f["probabilities"]) == set(CLASSES)
    assert all(0.0 <= p <= 1.0 for p in f["probabilities"].values())
    assert all(FAMILY_OF[c] in f["classes"] for c in f["classes"] if c in FAMILY_OF)  # hierarchy-consistent


def test_the_release_recipe_still_makes_the_shipped_model():
    """configs/release.yaml inherits from demo.yaml, so a change of the main job (spoken vocals,
    another fusion tagger) silently changed the recipe of the model already shipped: re-running
    ``keras-inst release`` would have made another model than the one documented. The shipped
    config, read with today's defaults for keys added since, must be the recipe's resolved config;
    a deliberate change of the recipe means re-shipping (or pinning the old value in release.yaml)."""
    import yaml

    from keras_inst.config.io import dump_config, from_dict, load_config
    from keras_inst.training.run_dir import differing_keys

    meta = read_shipped(FOLDER)
    if meta["recipe"] != "release":  # a folder from another recipe named by $KERAS_INST_RELEASE
        pytest.skip(f"{FOLDER} holds recipe {meta['recipe']!r}, not configs/release.yaml's")
    shipped, recipe = from_dict(meta["config"]), load_config("release")
    diff = differing_keys(yaml.safe_load(dump_config(shipped)), yaml.safe_load(dump_config(recipe)))
    assert diff == [], f"configs/release.yaml no longer resolves to the shipped model's config: {diff}"
