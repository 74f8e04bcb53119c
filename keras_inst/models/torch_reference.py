"""PyTorch reference of the paper model: Won et al.'s ShortChunkCNN(_Res) without its front end.

Module names are verbatim from minzwon/sota-music-tagging-models (``training/modules.py``,
``training/model.py``), so a ``state_dict`` of these classes is what
:mod:`keras_inst.models.torch_convert` converts; ``tests/models/test_torch_parity.py`` checks
that the Keras model computes the same outputs. ``forward`` starts at ``spec_bn`` on a log-mel
``[B, 1, n_mels, frames]`` (the reference's torchaudio ``spec``/``to_db`` are not ported:
keras_inst computes the log-mel in its own front end).

Used by ``scripts/bench_train.py`` to time the same model in PyTorch (CPU, and on a GPU machine
that has PyTorch but no TensorFlow): this module imports torch only, never TensorFlow or Keras.
"""

from __future__ import annotations

import torch
from torch import nn


class Conv_2d(nn.Module):  # noqa: N801 (reference name)
    def __init__(self, input_channels: int, output_channels: int, shape: int = 3, stride: int = 1, pooling: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(input_channels, output_channels, shape, stride=stride, padding=shape // 2)
        self.bn = nn.BatchNorm2d(output_channels)
        self.relu = nn.ReLU()
        self.mp = nn.MaxPool2d(pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mp(self.relu(self.bn(self.conv(x))))


class Res_2d(nn.Module):  # noqa: N801 (reference name)
    def __init__(self, input_channels: int, output_channels: int, shape: int = 3, stride: int = 2):
        super().__init__()
        self.conv_1 = nn.Conv2d(input_channels, output_channels, shape, stride=stride, padding=shape // 2)
        self.bn_1 = nn.BatchNorm2d(output_channels)
        self.conv_2 = nn.Conv2d(output_channels, output_channels, shape, padding=shape // 2)
        self.bn_2 = nn.BatchNorm2d(output_channels)
        self.diff = False
        if (stride != 1) or (input_channels != output_channels):
            self.conv_3 = nn.Conv2d(input_channels, output_channels, shape, stride=stride, padding=shape // 2)
            self.bn_3 = nn.BatchNorm2d(output_channels)
            self.diff = True
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn_2(self.conv_2(self.relu(self.bn_1(self.conv_1(x)))))
        if self.diff:
            x = self.bn_3(self.conv_3(x))
        return self.relu(x + out)


class _ShortChunkBase(nn.Module):
    def _dense(self, n_channels: int, n_class: int) -> None:
        self.dense1 = nn.Linear(n_channels * 4, n_channels * 4)
        self.bn = nn.BatchNorm1d(n_channels * 4)
        self.dense2 = nn.Linear(n_channels * 4, n_class)
        self.dropout = nn.Dropout(0.5)
        self.relu = nn.ReLU()

    def _layers(self, block: type[nn.Module], n: int, **kwargs: int) -> None:
        """``spec_bn`` and the reference's seven blocks ``layer1..layer7`` (channels 1 -> n -> n ->
        2n -> 2n -> 2n -> 2n -> 4n), registered in the reference's order."""
        self.spec_bn = nn.BatchNorm2d(1)
        chans = (1, n, n, 2 * n, 2 * n, 2 * n, 2 * n, 4 * n)
        for i in range(1, 8):
            setattr(self, f"layer{i}", block(chans[i - 1], chans[i], **kwargs))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """log-mel ``[B, 1, F, T]`` -> embedding ``[B, 4n]``."""
        x = self.spec_bn(x)
        for i in range(1, 8):
            x = getattr(self, f"layer{i}")(x)
        x = x.squeeze(2)  # [B, 4n, T']: the seven poolings leave one mel row
        if x.size(-1) != 1:
            x = nn.MaxPool1d(x.size(-1))(x)
        return x.squeeze(2)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.dense1(self.embed(x))))
        return self.dense2(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))

    def head_parameters(self) -> list[nn.Parameter]:
        """The ``head`` group of keras_inst (dense1, bn, dense2); the rest is the backbone."""
        return [*self.dense1.parameters(), *self.bn.parameters(), *self.dense2.parameters()]

    def backbone_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.parameters() if id(p) not in head]


class ShortChunkCNN(_ShortChunkBase):
    def __init__(self, n_channels: int = 128, n_class: int = 50):
        super().__init__()
        self._layers(Conv_2d, n_channels, pooling=2)
        self._dense(n_channels, n_class)


class ShortChunkCNN_Res(_ShortChunkBase):  # noqa: N801 (reference name)
    def __init__(self, n_channels: int = 128, n_class: int = 50):
        super().__init__()
        self._layers(Res_2d, n_channels, stride=2)
        self._dense(n_channels, n_class)
