"""Split convolutions over their input channels: a float-equivalent copy for dynamic-range int8.

Why: in the musicnn VGG's dynamic-range int8 model (:mod:`keras_inst.deploy.lite`) each conv
quantises its whole input tensor with ONE scale per example, and in conv2-conv5 a few input
channels reach far larger values than the rest, so one int8 step is larger than most channels'
values (docs/benchmarks.md "int8"). Keeping the whole conv float removes that error but also
the speed-up (conv2 is the model's largest conv). Keeping float only the few loud channels
keeps almost every multiply-add int8 (as LLM.int8() does for outlier features):

    conv(x) = relu(conv_float(x[..., S]) + conv_int8(x[..., ~S]) + bias)

with ``S`` the ``k`` input channels of largest peak |x_c| over the calibration waveforms.
``conv_float`` (named ``<conv>_float``) is kept float by the caller through the layer names of
:func:`keras_inst.deploy.lite.dynamic_range_int8`; ``conv_int8`` (``<conv>_int8``) carries the
bias. The copy computes the same function up to float summation order (checked by the caller).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FLOAT_SUFFIX = "_float"
INT8_SUFFIX = "_int8"


def splittable_convs(backbone: Any) -> list[str]:
    """Names of ``backbone``'s Conv2D layers with more than one input channel (the first conv of
    musicnn sees a single log-mel channel: nothing to split) in a single-chain model."""
    import keras

    return [lay.name for lay in backbone.layers if isinstance(lay, keras.layers.Conv2D)
            and int(lay.input.shape[-1]) > 1 and lay.data_format == "channels_last" and lay.groups == 1]


def input_peaks(backbone: Any, log_mel: np.ndarray, convs: Sequence[str], *, batch: int = 16) -> dict[str, np.ndarray]:
    """Max |x_c| per input channel ``[C_in]`` of each conv in ``convs`` over ``log_mel``
    (``[n, T, M]`` backbone inputs), one batch at a time (a running maximum: holding the
    activations of 128 windows took GBs, :mod:`keras_inst.deploy.equalize`)."""
    import keras

    probe = keras.Model(backbone.input, [backbone.get_layer(c).input for c in convs])
    peaks: list[np.ndarray] | None = None
    for i in range(0, len(log_mel), batch):
        outs = probe.predict_on_batch(log_mel[i : i + batch])
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        m = [np.abs(np.asarray(o)).reshape(-1, o.shape[-1]).max(axis=0) for o in outs]
        peaks = m if peaks is None else [np.maximum(a, b) for a, b in zip(peaks, m, strict=True)]
    return dict(zip(convs, peaks or [], strict=True))


def loudest_channels(peaks: np.ndarray, k: int) -> list[int]:
    """The ``k`` channels of largest peak, sorted by index (ties: the lower index first)."""
    if not 0 <= k <= len(peaks):
        raise ValueError(f"channel split: k must be in [0, {len(peaks)}] (got {k})")
    order = np.argsort(-np.asarray(peaks, np.float64), kind="stable")
    return sorted(int(c) for c in order[:k])


def _split_call(conv: Any, x: Any, k: int) -> Any:
    """``conv(x)`` as the sum of a float conv over input channels ``[:k]`` and an int8 conv
    over ``[k:]`` (contiguous: a SLICE that XNNPACK runs, where a GATHER left its graph)."""
    import keras

    kernel, *bias = conv.get_weights()  # [kh, kw, C_in, C_out], [C_out]
    parts = []
    for suffix, sl, use_bias in ((FLOAT_SUFFIX, slice(0, k), False), (INT8_SUFFIX, slice(k, None), conv.use_bias)):
        name = conv.name + suffix
        sub = keras.layers.Conv2D(conv.filters, conv.kernel_size, strides=conv.strides, padding=conv.padding,
                                  dilation_rate=conv.dilation_rate, use_bias=use_bias, name=name)
        taken = keras.layers.Lambda(lambda t, s=sl: t[..., s], name=name + "_in")(x)  # [B, T, M, k | C_in - k]
        parts.append(sub(taken))
        sub.set_weights([kernel[:, :, sl, :], *bias] if use_bias else [kernel[:, :, sl, :]])
    y = keras.layers.Add(name=conv.name + "_sum")(parts)
    return keras.layers.Activation(conv.activation, name=conv.name + "_act")(y)


def _permute_inputs(backbone: Any, conv_name: str, first: Sequence[int]) -> None:
    """Reorder the channels between ``conv_name`` and the conv + batch norm feeding it (in
    place) so that ``first`` come first: the producer's output channels, the batch norm's
    vectors and ``conv_name``'s input channels move together, so the function is unchanged
    (max-pooling and dropout between them act per channel)."""
    from keras_inst.deploy.equalize import equalisable_blocks

    block = next((b for b in equalisable_blocks(backbone) if b[2].name == conv_name), None)
    if block is None:
        raise ValueError(f"channel split: {conv_name!r} is not fed by a conv -> batch norm block in {backbone.name!r}")
    prev, bn, conv = block
    n = int(conv.input.shape[-1])
    perm = np.concatenate([np.asarray(first, np.int64), np.setdiff1d(np.arange(n), first)])  # [C]
    pk, *pb = prev.get_weights()  # [kh, kw, in, C], [C]
    prev.set_weights([pk[..., perm], *(b[perm] for b in pb)])
    bn.set_weights([w[perm] for w in bn.get_weights()])
    ck, *cb = conv.get_weights()  # [kh, kw, C, out]
    conv.set_weights([ck[:, :, perm, :], *cb])


def split_backbone(backbone: Any, split: Mapping[str, Sequence[int]]) -> Any:
    """A copy of the single-chain ``backbone`` whose convs named in ``split`` are split with those
    float input channels (an empty list leaves the conv whole)."""
    import keras

    unknown = set(split) - set(splittable_convs(backbone))
    if unknown:
        raise ValueError(f"channel split: {sorted(unknown)} are not splittable convs of {backbone.name!r}")
    src = keras.models.clone_model(backbone)
    src.set_weights(backbone.get_weights())
    for name, channels in split.items():
        if len(channels):
            _permute_inputs(src, name, channels)
    x = inp = keras.Input(tuple(src.input.shape[1:]))
    for prev, layer in zip(src.layers, src.layers[1:], strict=False):
        if layer.input is not prev.output:  # the first node: how the backbone was built
            raise ValueError(f"channel split: backbone {backbone.name!r} is not a single chain (layer {layer.name!r})")
        k = len(split.get(layer.name, ()))
        x = _split_call(layer, x, k) if k else layer(x)
    return keras.Model(inp, x, name=backbone.name)


def split_copy(model: Any, split: Mapping[str, Sequence[int]]) -> Any:
    """``model`` (frontend -> backbone -> head -> probabilities, as built by ``build_model``) with
    its backbone replaced by :func:`split_backbone`; the other layers are shared."""
    import keras

    wav = keras.Input(tuple(model.input.shape[1:]), dtype="float32")
    emb = split_backbone(model.get_layer("backbone"), split)(model.get_layer("frontend")(wav))
    probs = model.get_layer("probabilities")(model.get_layer("head")(emb))
    return keras.Model(wav, probs, name=model.name)
