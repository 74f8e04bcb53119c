"""keras_inst.models.torch_reference: the PyTorch reference that scripts/bench_train.py times is
the one test_torch_parity.py checks the Keras model against, and its parameter groups are
keras_inst's backbone / head groups."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from keras_inst.config.io import load_config  # noqa: E402
from keras_inst.models import torch_reference as ref  # noqa: E402
from keras_inst.models.optimizers import group_assignment  # noqa: E402
from keras_inst.models.short_chunk import build_model  # noqa: E402
from keras_inst.models.torch_convert import convert_state_dict  # noqa: E402


def _shapes(net) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("res", [False, True], ids=["cnn", "res"])
def test_same_state_dict_as_the_parity_tested_reference(res):
    test_torch_parity = pytest.importorskip("test_torch_parity")
    ours = (ref.ShortChunkCNN_Res if res else ref.ShortChunkCNN)(32, 15)
    theirs = (test_torch_parity.ShortChunkCNN_Res if res else test_torch_parity.ShortChunkCNN)(32, 15)
    assert _shapes(ours) == _shapes(theirs)


def test_converts_into_the_keras_model_and_computes_the_same_logits():
    torch.manual_seed(0)
    net = ref.ShortChunkCNN(32, 15).eval()
    cfg = load_config("paper", ["model.width_multiplier=0.25", "model.head_units=128"])
    model = convert_state_dict({k: v.numpy() for k, v in net.state_dict().items()}, cfg, head="all")
    mel = (-30.0 + 15.0 * np.random.default_rng(0).standard_normal((2, 128, 251))).astype(np.float32)
    with torch.no_grad():
        t_logits = net.logits(torch.from_numpy(mel)[:, None]).numpy()
    k_logits = np.asarray(model.get_layer("head")(model.get_layer("backbone")(mel, training=False), training=False))
    np.testing.assert_allclose(k_logits, t_logits, rtol=1e-4, atol=1e-4)


def test_parameter_groups_match_keras_backbone_and_head():
    net = ref.ShortChunkCNN(128, 15)
    cfg = load_config("paper", ["training.transfer=scratch", "training.pretrained=null"])
    model = build_model(cfg)
    groups = group_assignment(model)
    keras_count = {g: sum(int(np.prod(v.shape)) for v in model.trainable_variables if groups[v.path] == g) for g in ("backbone", "head")}
    torch_count = {"backbone": sum(p.numel() for p in net.backbone_parameters()), "head": sum(p.numel() for p in net.head_parameters())}
    assert torch_count == keras_count
    assert torch_count["head"] == 512 * 512 + 512 + 2 * 512 + 512 * 15 + 15  # dense1, bn, dense2
