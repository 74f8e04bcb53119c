"""Numerical parity with the PyTorch reference (minzwon/sota-music-tagging-models) and the
state_dict converter / CLI (keras_inst.models.torch_convert, scripts/convert_torch_short_chunk.py).

The reference classes are re-declared here without their torchaudio front end (torchaudio is
not installed): ``forward`` starts at ``spec_bn`` on a log-mel ``[B, 1, F, T]``.
"""

from __future__ import annotations

import logging
import sys

import keras
import numpy as np
import pytest
from script_module import load_script

from keras_inst.config.io import load_config
from keras_inst.models.short_chunk import build_model
from keras_inst.models.torch_convert import convert_state_dict, load_state_dict

torch = pytest.importorskip("torch")
nn = torch.nn


# The PyTorch reference (module names verbatim from minzwon's training/modules.py, model.py).
from keras_inst.models.torch_reference import ShortChunkCNN, ShortChunkCNN_Res  # noqa: E402

# ---- helpers ----


def _log_mel(batch: int = 3, seed: int = 0) -> np.ndarray:
    """A dB-scaled stand-in for a log-mel, [B, 128, 251]."""
    rng = np.random.default_rng(seed)
    return (-30.0 + 15.0 * rng.standard_normal((batch, 128, 251))).astype(np.float32)


def _randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and random BN statistics, in eval mode.

    The running statistics are first measured on data (so activations stay O(1) through seven
    blocks and the comparison is not trivially saturated), then perturbed at random.
    """
    torch.manual_seed(seed)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.2)
            m.momentum = None  # cumulative average over the calibration batch
        net.train()
        net.logits(torch.from_numpy(_log_mel(8, seed=seed + 100))[:, None])
        for m in bns:
            m.running_mean.add_(0.2 * torch.randn_like(m.running_mean) * m.running_var.sqrt())
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.7, 1.4))
    return net.eval()


def _torch_outputs(net: nn.Module, mel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        x = torch.from_numpy(mel)[:, None]  # [B, 1, F, T]
        return net.embed(x).numpy(), net.logits(x).numpy(), net(x).numpy()


def _state(net: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in net.state_dict().items()}


def _keras_outputs(
    model: keras.Model, mel: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    emb = model.get_layer("backbone")(mel, training=False)
    logits = model.get_layer("head")(emb, training=False)
    out = [keras.ops.convert_to_numpy(t) for t in (emb, logits, keras.ops.sigmoid(logits))]
    return out[0], out[1], out[2]


def _cfg(*overrides: str):
    """Quarter width: the reference with n_channels=32 (its dense1 has 4 * 32 units)."""
    return load_config("paper", ["model.width_multiplier=0.25", "model.head_units=128", *overrides])


@pytest.fixture(scope="module")
def cnn15() -> nn.Module:
    return _randomised(ShortChunkCNN(n_channels=32, n_class=15), seed=1)


# ---- parity ----


@pytest.mark.parametrize("res", [False, True], ids=["short_chunk_cnn", "short_chunk_res"])
def test_parity_with_reference(res, cnn15):
    net = _randomised(ShortChunkCNN_Res(32, 15), seed=2) if res else cnn15
    cfg = _cfg("model.architecture=short_chunk_res") if res else _cfg()
    model = convert_state_dict(_state(net), cfg, head="all")
    mel = _log_mel()
    t_emb, t_logits, t_probs = _torch_outputs(net, mel)
    k_emb, k_logits, k_probs = _keras_outputs(model, mel)
    assert 0.3 < t_logits.std() < 30  # a meaningful, unsaturated comparison
    assert np.any((t_probs > 0.05) & (t_probs < 0.95))
    np.testing.assert_allclose(k_emb, t_emb, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(k_logits, t_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(k_probs, t_probs, atol=1e-4)


def test_paper_size_matches_reference_parameter_count():
    net = ShortChunkCNN(n_channels=128, n_class=15)
    n_torch = sum(
        v.numel() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")
    )
    model = build_model(load_config("paper"))
    assert n_torch == model.count_params() == 3_674_003
    report = load_state_dict(_state(net), model, head="all")
    assert len(report.loaded) == len(net.state_dict()) - 9  # 9 BatchNorm counters ignored
    assert len(report.ignored) == 9 and all(
        k.endswith("num_batches_tracked") for k in report.ignored
    )
    np.testing.assert_array_equal(
        model.get_layer("backbone").get_layer("layer4_conv").kernel.numpy(),
        np.transpose(net.layer4.conv.weight.detach().numpy(), (2, 3, 1, 0)),
    )


def test_top50_state_dict_loads_backbone_only(caplog):
    net = _randomised(ShortChunkCNN(32, 50), seed=3)
    model = build_model(_cfg())
    dense2_before = model.get_layer("head").get_layer("dense2").kernel.numpy().copy()
    state = _state(net)
    report = load_state_dict(state, model)  # head="auto"
    assert report.head_newly_initialised and report.head_loaded == ()
    assert (
        "50 outputs" in report.head_message
        and "15-class head is newly initialised" in report.head_message
    )
    assert {"dense1.weight", "bn.running_var", "dense2.weight"} <= set(report.ignored)
    np.testing.assert_array_equal(
        model.get_layer("head").get_layer("dense2").kernel.numpy(), dense2_before
    )
    mel = _log_mel(2)
    np.testing.assert_allclose(
        _keras_outputs(model, mel)[0], _torch_outputs(net, mel)[0], rtol=1e-4, atol=1e-4
    )

    report = load_state_dict(state, model, head="hidden")
    assert report.head_loaded == ("bn", "dense1") and report.head_newly_initialised
    np.testing.assert_array_equal(
        model.get_layer("head").get_layer("dense1").kernel.numpy(),
        net.dense1.weight.detach().numpy().T,
    )
    with pytest.raises(ValueError, match=r"dense2.weight.*\(50, 128\).*\(128, 15\)"):
        load_state_dict(state, model, head="all")
    with caplog.at_level(logging.WARNING, logger="keras_inst.models.torch_convert"):
        convert_state_dict(state, model)
    assert "newly initialised" in caplog.text


def test_converter_key_handling(cnn15):
    state = _state(cnn15)
    model = build_model(_cfg())
    # torchaudio front-end buffers and nn.DataParallel's prefix are accepted.
    extra = dict(state)
    extra["spec.spectrogram.window"] = np.hanning(512).astype(np.float32)
    extra["spec.mel_scale.fb"] = np.zeros((257, 128), np.float32)
    report = load_state_dict({f"module.{k}": v for k, v in extra.items()}, model, head="all")
    assert {"spec.mel_scale.fb", "spec.spectrogram.window", "layer1.bn.num_batches_tracked"} <= set(
        report.ignored
    )
    assert report.head_loaded == ("bn", "dense1", "dense2") and not report.head_newly_initialised

    missing = {k: v for k, v in state.items() if k != "layer3.bn.running_var"}
    with pytest.raises(ValueError, match=r"missing keys \['layer3.bn.running_var'\]"):
        load_state_dict(missing, model)
    with pytest.raises(ValueError, match=r"unexpected keys \['layer8.conv.weight'\]"):
        load_state_dict({**state, "layer8.conv.weight": np.zeros((1, 1, 3, 3))}, model)
    with pytest.raises(ValueError, match=r"layer1.conv.weight.*\(32, 1, 3, 3\).*\(3, 3, 1, 64\)"):
        load_state_dict(state, build_model(_cfg("model.width_multiplier=0.5")))
    with pytest.raises(ValueError, match="conv_1.weight"):  # plain CNN weights into the Res model
        load_state_dict(state, build_model(_cfg("model.architecture=short_chunk_res")))
    # A failed load assigns nothing.
    fresh = build_model(_cfg())
    before = [w.copy() for w in fresh.get_weights()]
    with pytest.raises(ValueError):
        load_state_dict({**state, "dense2.bias": np.zeros(7, np.float32)}, fresh, head="all")
    assert all(np.array_equal(a, b) for a, b in zip(before, fresh.get_weights(), strict=True))
    with pytest.raises(ValueError, match="head must be one of"):
        load_state_dict(state, model, head="some")


# ---- CLI ----


@pytest.mark.parametrize("res", [False, True], ids=["short_chunk_cnn", "short_chunk_res"])
def test_cli_end_to_end(res, tmp_path, capsys):
    net = _randomised((ShortChunkCNN_Res if res else ShortChunkCNN)(32, 50), seed=4)
    state = dict(net.state_dict())
    state["spec.mel_scale.fb"] = torch.zeros(257, 128)  # as saved by the torchaudio reference
    pth = tmp_path / "best_model.pth"
    torch.save(state, pth)
    out = tmp_path / "weights" / "short_chunk.weights.h5"
    argv = [str(pth), "--out", str(out), "--set", "model.width_multiplier=0.25"] + (
        ["--res"] if res else []
    )
    assert load_script("convert_torch_short_chunk").main(argv) == 0
    assert out.is_file() and "backbone tensors" in capsys.readouterr().out

    arch = "short_chunk_res" if res else "short_chunk_cnn"
    model = build_model(_cfg(f"model.architecture={arch}"))
    model.get_layer("backbone").load_weights(out)
    mel = _log_mel(2)
    np.testing.assert_allclose(
        _keras_outputs(model, mel)[0], _torch_outputs(net, mel)[0], rtol=1e-4, atol=1e-4
    )


def test_cli_errors(tmp_path, monkeypatch):
    cli = load_script("convert_torch_short_chunk")
    pth = tmp_path / "sd.pth"
    torch.save(ShortChunkCNN(32, 50).state_dict(), pth)
    with pytest.raises(SystemExit, match="must end in .weights.h5"):
        cli.main([str(pth), "--out", str(tmp_path / "w.h5")])
    with pytest.raises(SystemExit, match="not found"):
        cli.main([str(tmp_path / "nope.pth"), "--out", str(tmp_path / "w.weights.h5")])
    with pytest.raises(SystemExit, match=r"missing keys .*layer1.conv_1.weight"):  # CNN file, --res
        cli.main(
            [
                str(pth),
                "--out",
                str(tmp_path / "w.weights.h5"),
                "--res",
                "--set",
                "model.width_multiplier=0.25",
            ]
        )
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(SystemExit, match="PyTorch is needed"):
        cli.main([str(pth), "--out", str(tmp_path / "w.weights.h5")])
