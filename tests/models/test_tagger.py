"""musicnn's taggers with their own heads, and the zero-shot 15-class classifier on their tags.

The VGG tagger runs on the vendored MSD_vgg checkpoint; the musicnn one on random weights under
the vendored MTT_musicnn graph (test_musicnn_cnn.py); the real ones when the wheel is cached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from script_module import load_script
from test_musicnn_cnn import CACHE, write_random_musicnn_checkpoint  # same folder, on sys.path

from keras_inst.models import musicnn as M
from keras_inst.models import tagger as T
from keras_inst.models.short_chunk import load_model
from keras_inst.runtime.keras_model import dual_output_model, model_info
from keras_inst.taxonomy import CLASSES

DATA = Path(__file__).resolve().parents[1] / "assets"
GOLDEN = DATA / "musicnn_golden" / "msd_vgg.npz"


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    with np.load(GOLDEN) as g:
        return g["audio"][:, : T.TAGGER_SAMPLES]  # two synthetic 3-s clips, cut to the input


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))  # the no-evidence logit is -1e4


def _check_against_graph(model, folder: Path, audio: np.ndarray) -> np.ndarray:
    """The tagger's probabilities equal musicnn's graph on the same log-mel; returns them."""
    log_mel = np.asarray(model.get_layer("frontend")(audio)).transpose(0, 2, 1)  # [B, 187, 96]
    assert log_mel.shape == (len(audio), 187, 96)
    ref = M.musicnn_reference_outputs(folder, log_mel, outputs=("logits",))["logits"]
    probs = np.asarray(model(audio, training=False))
    np.testing.assert_allclose(probs, _sigmoid(ref), atol=1e-5)
    assert probs.max() - probs.min() > 0.1
    return probs


def _expected_classes(tag_probs: np.ndarray, name: str) -> np.ndarray:
    """[B, 15]: each class the max of its tags' probabilities, 0 without tags."""
    tags, names = T.class_tags(T.TAGGERS[name].vocabulary), T.tag_names(name)
    cols = [tag_probs[:, [names.index(t) for t in tags[c]]].max(axis=1) if tags[c] else np.zeros(len(tag_probs))
            for c in CLASSES]
    return np.stack(cols, axis=1)


def test_tables_name_every_tag_once():
    for vocab, groups in T.TAG_CLASSES.items():
        tags = [t for _classes, ts, _why in groups for t in ts]
        assert sorted(tags) == sorted(M.MUSICNN_LABELS[vocab]) and len(tags) == len(set(tags)) == 50
        assert all(c in CLASSES for classes, _ts, _why in groups for c in classes)
    mtt = T.class_tags("MTT")
    assert set(mtt["singer"]) == {"singing", "vocal", "vocals", "male vocal", "female vocal", "opera"}
    assert set(mtt["singer"]) < set(mtt["voice"]) and {"choir", "female"} <= set(mtt["voice"])  # family closure
    assert set(mtt["key"]) == {"harpsichord", "piano"} and mtt["piano"] == ("piano",)
    assert mtt["drums"] == mtt["percussion"] == ("drums",)
    assert T.no_evidence_classes("musicnn_mtt_musicnn") == ("brass", "electric_guitar", "acoustic_guitar", "electric_bass")
    assert T.no_evidence_classes("musicnn_msd_vgg") == tuple(c for c in CLASSES if c not in ("voice", "plucked_string", "singer"))
    with pytest.raises(ValueError, match="unknown musicnn tagger 'musicnn_vgg'; known: musicnn_mtt_musicnn"):
        T.build_tagger("musicnn_vgg")


def test_partial_evidence_classes_have_evidence_but_miss_instruments():
    """Partial: some tag names the class, not every common instrument of it (MTT's woodwind is
    'flute' alone); a class with no evidence or with every instrument named is never partial."""
    assert T.partial_evidence_classes("musicnn_mtt_musicnn") == ("percussion", "plucked_string", "woodwind", "key")
    assert T.partial_evidence_classes("musicnn_msd_vgg") == ("plucked_string",)
    for name in T.TAGGERS:
        tags = T.class_tags(T.TAGGERS[name].vocabulary)
        assert all(tags[c] for c in T.partial_evidence_classes(name))
        assert not set(T.partial_evidence_classes(name)) & set(T.no_evidence_classes(name))
    assert T.class_tags("MTT")["woodwind"] == ("flute",)


def test_vgg_tagger_and_zero_shot_classifier(audio, tmp_path):
    tagger = T.build_tagger("musicnn_msd_vgg", path=DATA / "musicnn")
    tag_probs = _check_against_graph(tagger, DATA / "musicnn" / "MSD_vgg", audio)
    assert model_info(tagger) == {"sample_rate": 16000, "input_samples": 47616, "num_classes": 50, "embedding_dim": 256}

    clf = T.zero_shot_classifier("musicnn_msd_vgg", path=DATA / "musicnn")
    probs = np.asarray(clf(audio))
    np.testing.assert_allclose(probs, _expected_classes(tag_probs, "musicnn_msd_vgg"), atol=1e-6)
    assert np.all(probs[:, [CLASSES.index(c) for c in T.no_evidence_classes("musicnn_msd_vgg")]] == 0.0)

    clf.save(tmp_path / "zero_shot.keras")  # standard layers only: the runtime loads it
    served = dual_output_model(load_model(tmp_path / "zero_shot.keras", compile=False))(audio)
    np.testing.assert_allclose(np.asarray(served["probabilities"]), probs, atol=1e-6)
    assert served["embeddings"].shape == (2, 256)


def test_musicnn_tagger_matches_graph(audio, tmp_path):
    root = write_random_musicnn_checkpoint(tmp_path, seed=1)
    tagger = T.build_tagger("musicnn_mtt_musicnn", path=root)
    tag_probs = _check_against_graph(tagger, root / "MTT_musicnn", audio)
    clf = T.zero_shot_classifier("musicnn_mtt_musicnn", path=root)
    assert model_info(clf) == {"sample_rate": 16000, "input_samples": 47616, "num_classes": 15, "embedding_dim": 200}
    np.testing.assert_allclose(np.asarray(clf(audio)), _expected_classes(tag_probs, "musicnn_mtt_musicnn"), atol=1e-6)
    assert not any(w.trainable for w in clf.get_layer("head").get_layer("class_map").weights)


def test_class_map_is_the_max_over_tags():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (5, 50)).astype(np.float32)
    layer = T.class_map_layer("MTT", M.MTT_LABELS)
    got = np.asarray(layer(logits)).reshape(5, len(CLASSES), 50).max(axis=2)  # the model's Reshape + max
    want = _expected_classes(_sigmoid(logits), "musicnn_mtt_musicnn")
    np.testing.assert_allclose(_sigmoid(got), want, atol=1e-6)


def test_score_script_windows_and_auc():
    mod = load_script("score_tagger")
    n = T.TAGGER_SAMPLES
    assert mod.clip_windows(np.ones(n // 2, np.float32)).shape == (1, n)  # zero-padded
    padded = mod.clip_windows(np.ones(n // 2, np.float32))
    assert padded[0, : n // 2].sum() == n // 2 and padded[0, n // 2:].sum() == 0
    assert mod.clip_windows(np.ones(2 * n + 5, np.float32)).shape == (2, n)  # tail dropped
    labels = {"a": {"positive": ["voice"], "negative": ["piano", "brass"]},
              "b": {"positive": ["piano", "brass"], "negative": ["voice"]},
              "c": {"positive": [], "negative": ["voice", "piano", "brass"]}}
    probs = {k: np.zeros(len(CLASSES)) for k in labels}
    probs["a"][CLASSES.index("voice")], probs["b"][CLASSES.index("piano")] = 0.9, 0.2
    probs["c"][CLASSES.index("voice")] = 0.9  # tied with the positive: half a pair
    out = mod.score(probs, labels, ("brass",))
    assert out["per_class_roc_auc"] == {"voice": 0.75, "piano": 1.0} and out["macro_roc_auc"] == 0.875
    assert out["no_evidence_with_positives"] == ["brass"]


@pytest.mark.skipif(M._musicnn_dir(CACHE, "MTT_musicnn") is None,
                    reason="musicnn not cached; run keras_inst.models.musicnn.fetch_musicnn() once")
@pytest.mark.parametrize("name", list(T.TAGGERS))
def test_real_taggers_match_their_graphs_from_cache(audio, name):
    _check_against_graph(T.build_tagger(name, path=CACHE), CACHE / T.TAGGERS[name].checkpoint, audio)
