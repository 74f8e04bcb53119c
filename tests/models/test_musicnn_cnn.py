"""musicnn's musically motivated CNN in Keras: parity with musicnn's TF1 graph, weight mapping,
the ``musicnn`` architecture with ``musicnn_mtt_musicnn`` weights, the cache upgrade.

Without the wheel: the vendored inference graph tests/assets/musicnn/MTT_musicnn/graph.pb run
with random weights written under its variable names (the architecture and the weight mapping).
With the wheel in the cache: the real MTT_musicnn and MSD_musicnn against their own .meta graphs.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_inst.config.io import load_config
from keras_inst.models import musicnn as M
from keras_inst.models import musicnn_cnn as C
from keras_inst.models import pretrained as P
from keras_inst.models.short_chunk import build_model

DATA = Path(__file__).resolve().parents[1] / "assets"
GRAPH = DATA / "musicnn" / "MTT_musicnn" / M.GRAPH_FILE
GOLDEN = DATA / "musicnn_golden" / "msd_vgg.npz"
CACHE = Path(M.DEFAULT_CACHE).expanduser() / f"musicnn-{M.MUSICNN_VERSION}"


def graph_variables() -> dict[str, tuple[int, ...]]:
    """Variable name -> shape, from the vendored graph's VariableV2 nodes."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(GRAPH.read_bytes())
    return {n.name: tuple(d.size for d in n.attr["shape"].shape.dim) for n in graph_def.node if n.op == "VariableV2"}


def write_random_musicnn_checkpoint(root: Path, seed: int = 0) -> Path:
    """``root/MTT_musicnn/``: random weights under the graph's names, plus the vendored graph."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in graph_variables().items():
        if name.endswith("moving_variance"):
            v = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("kernel"):
            v = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        else:  # biases, betas, moving means
            v = rng.normal(0.0, 0.3, shape)
        values[name] = v.astype(np.float32)
    M.write_musicnn_checkpoint(values, root / "MTT_musicnn")
    shutil.copyfile(GRAPH, root / "MTT_musicnn" / M.GRAPH_FILE)
    return root


@pytest.fixture(scope="module")
def random_root(tmp_path_factory) -> Path:
    return write_random_musicnn_checkpoint(tmp_path_factory.mktemp("musicnn_random"))


@pytest.fixture(scope="module")
def log_mel() -> np.ndarray:
    with np.load(GOLDEN) as g:
        return g["log_mel"]  # musicnn's front end on two synthetic clips [2, 187, 96]


@pytest.fixture(scope="module")
def cfg():
    return load_config("musicnn_finetune", ["model.architecture=musicnn", "training.pretrained=musicnn_mtt_musicnn"])


def _port(cfg, root: Path, checkpoint: str = "MTT_musicnn") -> tuple[keras.Model, keras.layers.Dense]:
    backbone = C.build_musicnn_cnn_backbone(cfg)
    tags = keras.layers.Dense(50, name="tags")
    tags.build((None, 200))
    return C.load_musicnn_cnn_weights(backbone, checkpoint, path=root, tags=tags), tags


def _compare(backbone, tags, folder: Path, log_mel: np.ndarray) -> None:
    ref = M.musicnn_reference_outputs(folder, log_mel)
    penultimate = np.asarray(backbone(np.transpose(log_mel, (0, 2, 1)), training=False))
    assert penultimate.shape == ref["penultimate"].shape == (len(log_mel), 200)
    np.testing.assert_allclose(penultimate, ref["penultimate"], atol=1e-4)
    np.testing.assert_allclose(np.asarray(tags(penultimate)), ref["logits"], atol=1e-4)
    assert np.abs(ref["logits"]).max() > 1.0 and ref["logits"].std() > 0.1  # not a degenerate output


def test_vendored_graph_size_and_architecture_table():
    assert GRAPH.stat().st_size == 67266
    shapes = graph_variables()
    assert len(shapes) == 64  # 8 convs x 2, 11 batch norms x 4, 2 dense x 2
    for i, f in enumerate(C.MUSICNN_FRONTEND):
        assert shapes[f"conv2d{f'_{i}' if i else ''}/kernel"] == (*f.kernel, 1, f.filters)
    assert shapes["conv2d_5/kernel"] == (7, 561, 1, 64) and shapes["conv2d_7/kernel"] == (7, 64, 1, 64)
    assert shapes["batch_normalization_9/gamma"] == (1506,)  # (561 + 3 x 64) x {max, mean}
    assert shapes["dense/kernel"] == (1506, 200) and shapes["dense_1/kernel"] == (200, 50)


@pytest.mark.parametrize("frames", [187, 251, 40])
def test_keras_port_matches_musicnn_graph(random_root, cfg, log_mel, frames):
    # 187: musicnn's input; 251: the project's 4-s chunks; 40: shorter than the temporal filters.
    x = np.concatenate([log_mel, log_mel[::-1]], axis=1)[:, :frames]
    backbone, tags = _port(cfg, random_root)
    _compare(backbone, tags, random_root / "MTT_musicnn", x)


def test_architecture_and_weights_build_a_classifier(random_root):
    cfg = load_config("musicnn_finetune", ["model.architecture=musicnn", "training.pretrained=musicnn_mtt_musicnn",
                                           f"training.pretrained_path={random_root}"])
    model = build_model(cfg)
    backbone = P.load_pretrained_backbone(model, cfg)
    assert backbone is model.get_layer("backbone") and backbone.output.shape == (None, 200)
    values = M.read_checkpoint_variables("MTT_musicnn", path=random_root)
    np.testing.assert_array_equal(np.asarray(backbone.get_layer("midend2").kernel), values["conv2d_6/kernel"][:, :, 0])
    np.testing.assert_array_equal(np.asarray(backbone.get_layer("penultimate").moving_variance),
                                  values["batch_normalization_10/moving_variance"])
    assert model.get_layer("head").get_layer("dense2").units == 15
    assert model(np.zeros((1, cfg.audio.chunk_samples), np.float32)).shape == (1, 15)

    with pytest.raises(ValueError, match=r"'model.architecture' must be 'musicnn' \(got 'musicnn_vgg'\)"):
        P.check_pretrained_config(load_config("musicnn_finetune", ["training.pretrained=musicnn_mtt_musicnn"]))
    with pytest.raises(ValueError, match="'features.n_mels' must be 96"):
        P.check_pretrained_config(load_config("musicnn_finetune", [
            "model.architecture=musicnn", "training.pretrained=musicnn_msd_musicnn", "features.n_mels=128"]))


def test_load_errors_name_the_problem(random_root, cfg):
    narrow = C.build_musicnn_cnn_backbone(load_config("musicnn_finetune", ["model.architecture=musicnn", "model.width_multiplier=0.5"]))
    before = [np.array(w) for w in narrow.get_weights()]
    with pytest.raises(ValueError, match=r"'conv2d/kernel' has shape \(7, 38, 1, 204\) but Keras timbral_74.kernel has \(7, 38, 1, 102\)"):
        C.load_musicnn_cnn_weights(narrow, path=random_root)
    assert all(np.array_equal(a, b) for a, b in zip(before, narrow.get_weights(), strict=True))  # nothing assigned
    with pytest.raises(ValueError, match="not a musicnn backbone"):
        C.load_musicnn_cnn_weights(P.build_musicnn_backbone(load_config("musicnn_finetune")), path=random_root)
    with pytest.raises(ValueError, match="must be one of MTT_musicnn, MSD_musicnn"):
        C.load_musicnn_cnn_weights(C.build_musicnn_cnn_backbone(cfg), "MTT_vgg", path=random_root)
    with pytest.raises(FileNotFoundError, match="has no MSD_musicnn/ checkpoint"):
        C.load_musicnn_cnn_weights(C.build_musicnn_cnn_backbone(cfg), "MSD_musicnn", path=random_root)
    with pytest.raises(ValueError, match="features.n_mels"):
        C.build_musicnn_cnn_backbone(load_config("musicnn_finetune", ["model.architecture=musicnn", "features.n_mels=48"]))


def test_cache_without_the_checkpoint_is_upgraded(random_root, tmp_path):
    def wheel(path: Path, folders: tuple[str, ...]) -> Path:
        with zipfile.ZipFile(path, "w") as zf:
            for folder in folders:
                src = DATA / "musicnn" / "MSD_vgg" if folder == "MSD_vgg" else random_root / folder
                for f in src.iterdir():
                    zf.write(f, f"musicnn/{folder}/{f.name}")
        return path

    cache = tmp_path / "cache"
    old = M.fetch_musicnn(cache_dir=cache, path=wheel(tmp_path / "old.whl", ("MSD_vgg",)))  # an older install
    assert M._musicnn_dir(old, "MTT_musicnn") is None
    new = M.fetch_musicnn(cache_dir=cache, path=wheel(tmp_path / "new.whl", ("MSD_vgg", "MTT_musicnn")),
                          checkpoint="MTT_musicnn")
    assert new == old and sorted(p.name for p in new.iterdir()) == ["MSD_vgg", "MTT_musicnn"]
    assert sorted(p.name for p in cache.iterdir()) == [new.name]  # replaced by renames, nothing left over
    assert M.fetch_musicnn(cache_dir=cache, checkpoint="MSD_vgg") == new  # cached: no download


@pytest.mark.skipif(M._musicnn_dir(CACHE, "MTT_musicnn") is None,
                    reason="musicnn not cached; run keras_inst.models.musicnn.fetch_musicnn() once")
@pytest.mark.parametrize("checkpoint", ["MTT_musicnn", "MSD_musicnn"])
def test_real_checkpoints_match_their_graphs_from_cache(cfg, log_mel, checkpoint):
    backbone, tags = _port(cfg, CACHE, checkpoint)
    for frames in (187, 64):
        _compare(backbone, tags, CACHE / checkpoint, log_mel[:, :frames])
