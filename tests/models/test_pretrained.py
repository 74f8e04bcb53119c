"""Pre-trained backbones: musicnn VGG port (parity with musicnn's own TF1 graph), weight mapping,
config checks and the short-chunk CNN weights loader.

The reference outputs come from musicnn's original graph on the vendored MSD_vgg checkpoint
(tests/assets/musicnn; see tests/test_musicnn.py for the files themselves).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from keras_inst.config.io import load_config
from keras_inst.models import musicnn as M
from keras_inst.models import pretrained as P
from keras_inst.models.frontend import log_mel_from_config
from keras_inst.models.short_chunk import build_backbone, build_model

DATA = Path(__file__).resolve().parents[1] / "assets"
MUSICNN = DATA / "musicnn"
GOLDEN = DATA / "musicnn_golden" / "msd_vgg.npz"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as g:
        return {k: g[k] for k in g.files}


@pytest.fixture(scope="module")
def musicnn_cfg():
    return load_config("musicnn_finetune", [f"training.pretrained_path={MUSICNN}"])


@pytest.fixture(scope="module")
def msd_backbone(musicnn_cfg) -> keras.Model:
    backbone = P.build_musicnn_backbone(musicnn_cfg)
    return P.load_musicnn_weights(backbone, "msd", path=MUSICNN)


def _pool5_model(backbone: keras.Model) -> keras.Model:
    return keras.Model(backbone.input, [backbone.get_layer("pool5").output, backbone.output])


def _keras_outputs(backbone: keras.Model, log_mel_tm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pool5 [B, T5, 1, 128] and embedding [B, 128] for musicnn-layout input [B, T, 96]."""
    pool5, emb = _pool5_model(backbone)(np.transpose(log_mel_tm, (0, 2, 1)), training=False)
    return np.asarray(pool5), np.asarray(emb)


# --- the port is musicnn's graph -------------------------------------------------------------


def test_pool_table_matches_msd_meta_graph():
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((MUSICNN / "MSD_vgg" / ".meta").read_bytes())
    pools = [
        (tuple(n.attr["ksize"].list.i[1:3]), tuple(n.attr["strides"].list.i[1:3]))
        for n in meta.graph_def.node
        if n.op == "MaxPool" and n.name.startswith("model/")
    ]
    assert tuple(pools) == P.MUSICNN_POOLS["msd"]
    assert P.MUSICNN_POOLS["msd"] != P.MUSICNN_POOLS["mtt"]


def test_keras_backbone_matches_musicnn_graph(msd_backbone, golden):
    pool5, emb = _keras_outputs(msd_backbone, golden["log_mel"])
    assert pool5.shape == (2, 2, 1, 128) and emb.shape == (2, 128)
    np.testing.assert_allclose(pool5, golden["pool5"], atol=1e-4)
    np.testing.assert_allclose(emb, golden["pool5"].max(axis=(1, 2)), atol=1e-4)
    # musicnn's own output layer on the Keras pool5 gives the graph's tag logits.
    dense = M.read_musicnn_variables("msd", path=MUSICNN)
    logits = pool5.reshape(2, -1) @ dense["dense/kernel"] + dense["dense/bias"]
    np.testing.assert_allclose(logits, golden["logits"], atol=1e-4)
    assert np.abs(golden["logits"]).max() > 1.0  # real weights, not a degenerate output


def test_keras_backbone_matches_graph_on_4s_chunks(msd_backbone, golden):
    # 251 frames = the project's 4-s chunks; the graph's input is made length-dynamic.
    log_mel = np.concatenate([golden["log_mel"], golden["log_mel"][::-1, :64]], axis=1)
    ref = M.musicnn_reference_outputs(MUSICNN / "MSD_vgg", log_mel, outputs=("pool5",))
    pool5, emb = _keras_outputs(msd_backbone, log_mel)
    assert pool5.shape == ref["pool5"].shape == (2, 3, 1, 128)
    np.testing.assert_allclose(pool5, ref["pool5"], atol=1e-4)
    np.testing.assert_allclose(emb, ref["pool5"].max(axis=(1, 2)), atol=1e-4)


def test_front_end_and_backbone_from_audio(msd_backbone, musicnn_cfg, golden):
    front = log_mel_from_config(musicnn_cfg.features, musicnn_cfg.audio)
    log_mel = np.asarray(front(golden["audio"]))  # [2, 96, 188]
    assert log_mel.shape == (2, 96, 188)
    np.testing.assert_allclose(log_mel[:, :, :187].transpose(0, 2, 1), golden["log_mel"], atol=1e-4)
    pool5, _ = _keras_outputs(msd_backbone, log_mel[:, :, :187].transpose(0, 2, 1))
    dense = M.read_musicnn_variables("msd", path=MUSICNN)
    logits = pool5.reshape(2, -1) @ dense["dense/kernel"] + dense["dense/bias"]
    np.testing.assert_allclose(logits, golden["logits"], atol=1e-3)
    np.testing.assert_array_equal(logits.argmax(axis=1), golden["logits"].argmax(axis=1))


def test_minimum_lengths(musicnn_cfg):
    for variant, shortest in P.MUSICNN_MIN_FRAMES.items():
        pools = P.MUSICNN_POOLS[variant]
        assert P._pooled_size(shortest, pools, 0) == 1 and P._pooled_size(shortest - 1, pools, 0) == 0
        assert P._pooled_size(96, pools, 1) == 1
        b = P.build_musicnn_backbone(musicnn_cfg, variant=variant, frames=shortest)
        assert b.output.shape == (None, 128)
        with pytest.raises(ValueError, match="audio.chunk_seconds"):
            P.build_musicnn_backbone(musicnn_cfg, variant=variant, frames=shortest - 1)
    with pytest.raises(ValueError, match="features.n_mels"):
        P.build_musicnn_backbone(load_config("musicnn_finetune", ["features.n_mels=16"]))


# --- weight mapping errors -------------------------------------------------------------------


def test_load_errors_name_the_problem(musicnn_cfg, tmp_path):
    mtt = P.build_musicnn_backbone(musicnn_cfg, variant="mtt")
    with pytest.raises(ValueError, match="variant='msd'"):
        P.load_musicnn_weights(mtt, "msd", path=MUSICNN)
    with pytest.raises(FileNotFoundError, match="MTT_vgg"):
        P.load_musicnn_weights(mtt, "mtt", path=MUSICNN)
    with pytest.raises(ValueError, match="must be one of msd, mtt"):
        P.load_musicnn_weights(mtt, "jamendo", path=MUSICNN)
    narrow = P.build_musicnn_backbone(load_config("musicnn_finetune", ["model.width_multiplier=0.5"]))
    with pytest.raises(ValueError, match=r"'1CNN/kernel' has shape \(3, 3, 1, 128\) but Keras conv1.kernel has \(3, 3, 1, 64\)"):
        P.load_musicnn_weights(narrow, "msd", path=MUSICNN)
    with pytest.raises(ValueError, match="not a musicnn_vgg backbone"):
        P.load_musicnn_weights(build_backbone(load_config("paper")), "msd", path=MUSICNN)

    values = M.read_musicnn_variables("msd", path=MUSICNN)
    extra = dict(values, **{"6CNN/kernel": np.zeros((3, 3, 128, 128), np.float32)})
    del extra["5CNN/bias"]
    M.write_musicnn_checkpoint(extra, tmp_path / "odd" / "MSD_vgg")
    fresh = P.build_musicnn_backbone(musicnn_cfg)
    before = [np.array(w) for w in fresh.get_weights()]
    with pytest.raises(ValueError, match=r"unmapped checkpoint variables \['6CNN/kernel'\], missing variables \['5CNN/bias'\]"):
        P.load_musicnn_weights(fresh, "msd", path=tmp_path / "odd")
    assert all(np.array_equal(a, b) for a, b in zip(before, fresh.get_weights(), strict=True))


# --- config checks and the training entry point ----------------------------------------------


def test_config_consistency_errors_name_keys():
    P.check_pretrained_config(load_config("musicnn_finetune"))
    P.check_pretrained_config(load_config("paper"))
    with pytest.raises(ValueError) as e:
        P.check_pretrained_config(load_config("paper", ["training.pretrained=musicnn_msd_vgg"]))
    msg = str(e.value)
    for key in ("model.architecture", "features.n_mels", "features.mel_scale", "features.mel_norm", "features.compression"):
        assert f"'{key}'" in msg
    assert "features.hop_length" not in msg
    with pytest.raises(ValueError, match=r"'audio.sample_rate' must be 16000 \(got 22050\)"):
        P.check_pretrained_config(load_config("musicnn_finetune", ["audio.sample_rate=22050"]))
    with pytest.raises(ValueError, match=r"'model.architecture' must be 'short_chunk_cnn' \(got 'musicnn_vgg'\)"):
        P.check_pretrained_config(load_config("musicnn_finetune", ["training.pretrained=short_chunk_cnn"]))


def test_load_pretrained_backbone_musicnn_into_full_model(musicnn_cfg):
    model = build_model(musicnn_cfg)
    backbone = P.load_pretrained_backbone(model, musicnn_cfg)
    assert backbone is model.get_layer("backbone")
    values = M.read_musicnn_variables("msd", path=MUSICNN)
    np.testing.assert_array_equal(np.asarray(backbone.get_layer("conv4").kernel), values["4CNN/kernel"])
    np.testing.assert_array_equal(np.asarray(backbone.get_layer("input_bn").moving_variance), values["batch_normalization/moving_variance"])
    assert backbone.input.shape == (None, 96, 251)

    scratch = load_config("musicnn_finetune", ["training.transfer=scratch"])
    fresh = build_model(scratch)
    before = np.array(fresh.get_layer("backbone").get_layer("conv4").kernel)
    assert P.load_pretrained_backbone(fresh, scratch) is None
    np.testing.assert_array_equal(np.asarray(fresh.get_layer("backbone").get_layer("conv4").kernel), before)

    with pytest.raises(ValueError, match="'features.n_mels' must be 96"):
        P.load_pretrained_backbone(model, load_config("musicnn_finetune", ["features.n_mels=128"]))


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, on the mismatched file
def test_short_chunk_weights_round_trip(tmp_path):
    path = tmp_path / "short_chunk_cnn.weights.h5"
    cfg = load_config("paper", ["model.width_multiplier=0.125", f"training.pretrained_path={path}"])
    source = build_backbone(cfg)
    keras.utils.set_random_seed(1)
    source.set_weights([np.random.default_rng(i).normal(size=w.shape).astype(w.dtype) for i, w in enumerate(source.get_weights())])
    source.save_weights(path)

    with pytest.raises(FileNotFoundError, match=r"missing.weights.h5.*convert_torch_short_chunk.py MODEL.pth --out .*missing.weights.h5"):
        P.load_pretrained_backbone(build_backbone(cfg), load_config("paper", ["model.width_multiplier=0.125", f"training.pretrained_path={tmp_path / 'missing.weights.h5'}"]))

    model = build_model(cfg)
    target = P.load_pretrained_backbone(model, cfg)
    assert target is model.get_layer("backbone")
    for a, b in zip(source.weights, target.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bit-exact

    wide = load_config("paper", ["model.width_multiplier=0.25", f"training.pretrained_path={path}"])
    with pytest.raises(ValueError, match="short_chunk_cnn.weights.h5: does not fit"):
        P.load_pretrained_backbone(build_backbone(wide), wide)
    assert P.short_chunk_weights_path(load_config("paper")) == Path("~/.cache/keras_inst/pretrained/short_chunk_cnn.weights.h5").expanduser()


@pytest.mark.slow
def test_both_checkpoints_match_their_graphs_from_cache():
    """Full parity for MSD_vgg and MTT_vgg with the checkpoints in the user cache (no download)."""
    root = Path(M.DEFAULT_CACHE).expanduser() / f"musicnn-{M.MUSICNN_VERSION}"
    if M._musicnn_dir(root) is None:
        pytest.skip(f"musicnn not cached in {root}; run keras_inst.models.musicnn.fetch_musicnn() once")
    cfg = load_config("musicnn_finetune")
    rng = np.random.default_rng(0)
    for which, folder in M.MUSICNN_MODELS.items():
        backbone = P.load_musicnn_weights(P.build_musicnn_backbone(cfg, variant=which), which, path=root)
        for frames in (187, 251, P.MUSICNN_MIN_FRAMES[which]):
            log_mel = rng.uniform(0.0, 4.0, (2, frames, 96)).astype(np.float32)
            ref = M.musicnn_reference_outputs(root / folder, log_mel, outputs=("pool5",))
            np.testing.assert_allclose(_keras_outputs(backbone, log_mel)[0], ref["pool5"], atol=1e-4)
