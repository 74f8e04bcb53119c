"""Pre-trained backbones: musicnn's VGG taggers ported to Keras, and saved short-chunk CNNs.

musicnn 0.1.0 (Pons & Serra, ISC licence, on PyPI) ships TF1 checkpoints of a 5-layer VGG
trained for 50-tag music tagging on the Million Song Dataset (``MSD_vgg``) and MagnaTagATune
(``MTT_vgg``). Its graph (``musicnn/models.py: vgg``) on a log-mel patch ``[B, 187 frames, 96
mels]`` is: input batch norm; then 5 x (3x3 conv, 128 filters, 'same', ReLU -> batch norm ->
max pool 'valid') with dropout 0.25 after pools 1-4; then flatten pool5 ``[B, 2, 1, 128]`` ->
dropout 0.5 -> dense 50. The pools differ between the two checkpoints (read from their .meta
graphs; musicnn's models.py only shows MTT's): MTT (4,1)/(2,2), (2,2)/(2,2) x 3, (4,4)/(4,4);
MSD (4,1)/(4,1), (1,4)/(1,4), (2,2)/(2,2) x 2, (4,4)/(4,4), as (time, mel) size/stride.

:func:`build_musicnn_backbone` reproduces that graph up to pool5 and then takes the maximum
over pool5's remaining time steps: a 128-d embedding for any chunk of >= 64 (MSD) or 66 (MTT)
frames, where musicnn's own dense layer needs exactly 187. The 50-tag dense layer is not part
of the backbone: the paper (§2.4) replaces the fully connected layers with new ones.

Front end (``musicnn/extractor.py``): ``librosa.feature.melspectrogram(y, sr=16000,
hop_length=256, n_fft=512, n_mels=96)`` i.e. Hann window, centred frames (reflect padding in
the librosa 0.7 it was trained with), power 2, Slaney mel scale with Slaney area norm, 0 Hz to
Nyquist; then ``log10(10000 x + 1)``. :data:`MUSICNN_REQUIRED` lists the matching config keys.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np

from keras_inst.config import ExperimentConfig

MUSICNN_VERSION = "0.1.0"
MUSICNN_MODELS = {"msd": "MSD_vgg", "mtt": "MTT_vgg"}
MUSICNN_FILTERS = 128
_CKPT_FILES = (".index", ".data-00000-of-00001")  # prefix "<model>/" + these suffixes
# (time, mel) pool size and strides after each conv, as in each checkpoint's .meta graph.
MUSICNN_POOLS: dict[str, tuple[tuple[tuple[int, int], tuple[int, int]], ...]] = {
    "msd": (((4, 1), (4, 1)), ((1, 4), (1, 4)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))),
    "mtt": (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))),
}
MUSICNN_MIN_FRAMES = {"msd": 64, "mtt": 66}  # shortest input whose pool5 has >= 1 time step

# Config values the musicnn weights need, as "section.key": allowed values.
MUSICNN_REQUIRED: dict[str, tuple[object, ...]] = {
    "model.architecture": ("musicnn_vgg",),
    "model.width_multiplier": (1.0,),
    "audio.sample_rate": (16000,),
    "features.n_fft": (512,),
    "features.win_length": (None, 512),
    "features.hop_length": (256,),
    "features.n_mels": (96,),
    "features.f_min": (0.0,),
    "features.f_max": (None, 8000.0),
    "features.mel_scale": ("slaney",),
    "features.mel_norm": ("slaney",),
    "features.center": (True,),
    "features.pad_mode": ("reflect",),
    "features.power": (2.0,),
    "features.compression": ("log10",),
    "features.log_c": (10000.0,),
}
SHORT_CHUNK_REQUIRED: dict[str, tuple[object, ...]] = {"model.architecture": ("short_chunk_cnn",)}
DEFAULT_CACHE = "~/.cache/keras_inst/pretrained"


def musicnn_variant(cfg: ExperimentConfig) -> str:
    """'mtt' for ``training.pretrained: musicnn_mtt_vgg``, else 'msd' (the pools to build)."""
    return "mtt" if cfg.training.pretrained == "musicnn_mtt_vgg" else "msd"


def _pooled_size(size: int, pools: tuple[tuple[int, int], ...], axis: int) -> int:
    """Length of one axis (0: time, 1: mel) after musicnn's 'valid' max pools."""
    for pool, strides in pools:
        size = (size - pool[axis]) // strides[axis] + 1 if size >= pool[axis] else 0
    return size


def build_musicnn_backbone(
    cfg: ExperimentConfig, *, variant: str | None = None, frames: int | None = None
) -> keras.Model:
    """musicnn's VGG as a Keras model ``log-mel [B, n_mels, frames] -> embedding [B, 128]``.

    ``variant`` ('msd' | 'mtt', default from :func:`musicnn_variant`) picks the pooling of that
    checkpoint. ``frames`` fixes the input length (None: any length >= MUSICNN_MIN_FRAMES).
    ``model.channels`` is not used (the checkpoints fix 5 x 128 filters);
    ``model.width_multiplier`` scales the filters for from-scratch runs only.
    """
    variant = musicnn_variant(cfg) if variant is None else variant
    if variant not in MUSICNN_POOLS:
        raise ValueError(f"musicnn variant must be one of {', '.join(MUSICNN_POOLS)}, got {variant!r}")
    pools = MUSICNN_POOLS[variant]
    if _pooled_size(cfg.features.n_mels, pools, 1) < 1:
        raise ValueError(f"config key 'features.n_mels': {cfg.features.n_mels} mel bands are too few for musicnn_vgg (96 expected)")
    if frames is not None and _pooled_size(frames, pools, 0) < 1:
        raise ValueError(
            f"config key 'audio.chunk_seconds': {frames} frames are too few for musicnn_vgg "
            f"({variant}), which needs >= {MUSICNN_MIN_FRAMES[variant]}"
        )
    n_mels = cfg.features.n_mels
    filters = max(1, int(round(MUSICNN_FILTERS * cfg.model.width_multiplier)))
    inputs = keras.Input(shape=(n_mels, frames), name="log_mel")  # [B, M, T]
    # musicnn convolves [B, T, M, 1] (time = height); its pools are not square, so the
    # layout must match for its kernels to mean the same thing.
    x = keras.layers.Permute((2, 1), name="to_time_mel")(inputs)  # [B, T, M]
    x = keras.layers.Reshape((-1, n_mels, 1), name="add_channel")(x)  # [B, T, M, 1]
    x = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name="input_bn")(x)
    for i, (pool, strides) in enumerate(pools, start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        # musicnn normalises after the ReLU; TF1 batch-norm defaults = Keras defaults.
        x = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=f"bn{i}")(x)
        x = keras.layers.MaxPooling2D(pool, strides=strides, padding="valid", name=f"pool{i}")(x)
        if i < len(pools):
            x = keras.layers.Dropout(0.25, name=f"dropout{i}")(x)
    # pool5: [B, T5, M5, C] with M5 = 1 for 96 mels; max over what is left -> [B, C].
    embedding = keras.layers.GlobalMaxPooling2D(name="embedding")(x)
    return keras.Model(inputs, embedding, name="backbone")


def build_musicnn_vgg_backbone(cfg: ExperimentConfig, *, frames: int | None = None) -> keras.Model:
    """``model.architecture: musicnn_vgg`` for :func:`keras_inst.model.build_backbone`."""
    return build_musicnn_backbone(cfg, frames=frames)


def _musicnn_dir(folder: Path) -> Path | None:
    """The folder holding MSD_vgg/ and/or MTT_vgg/ at or just below ``folder``, if any."""
    for cand in (folder, folder / "musicnn"):
        if any(all((cand / m / f).is_file() for f in _CKPT_FILES) for m in MUSICNN_MODELS.values()):
            return cand
    return None


def _extract_archive(archive: Path, dest: Path) -> None:
    """Extract musicnn's VGG checkpoints and licence from a wheel or sdist into ``dest``."""
    wanted = tuple(f"musicnn/{m}/" for m in MUSICNN_MODELS.values())

    def target(name: str) -> Path | None:
        # Archive members look like [musicnn-0.1.0/]musicnn/MSD_vgg/.index; keep only those
        # (and the licence) and never follow ".." out of dest.
        parts = name.replace("\\", "/").split("/")
        if ".." in parts:
            return None
        rel = "/".join(parts)
        for w in wanted:
            i = rel.find(w)
            if i >= 0 and not rel.endswith("/"):
                return dest / rel[i + len("musicnn/"):]
        if parts[-1] in ("LICENSE", "LICENSE.md", "LICENSE.txt"):
            return dest / "LICENSE.md"
        return None

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if (out := target(name)) is not None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(zf.read(name))
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf_:
            for member in tf_.getmembers():
                out = target(member.name)
                if out is not None and member.isfile():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    src = tf_.extractfile(member)
                    out.write_bytes(src.read() if src is not None else b"")
    else:
        raise ValueError(f"{archive}: not a wheel (.whl/.zip) or sdist (.tar.gz) of musicnn")
    if _musicnn_dir(dest) is None:
        raise ValueError(f"{archive}: holds no musicnn VGG checkpoint (musicnn/MSD_vgg/.index ...)")


def _install_atomically(archive: Path, final: Path) -> Path:
    """Extract ``archive`` into a temp folder beside ``final`` and rename it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".musicnn-", dir=final.parent))
    try:
        _extract_archive(archive, tmp)
        if final.exists() and _musicnn_dir(final) is None:  # left over from a broken install
            shutil.rmtree(final)
        try:
            os.replace(tmp, final)
        except OSError:  # another process installed it first
            if _musicnn_dir(final) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def fetch_musicnn(*, cache_dir: str | Path = DEFAULT_CACHE, path: str | Path | None = None) -> Path:
    """The folder holding musicnn's ``MSD_vgg/`` and ``MTT_vgg/`` checkpoint folders.

    ``path``: a folder with those checkpoints (or musicnn's wheel/sdist unpacked), or the
    downloaded wheel/tarball itself (extracted into the cache). Without it: the cache, else
    ``pip download musicnn==0.1.0 --no-deps`` (needs PyPI) extracted atomically into the cache.
    """
    final = Path(cache_dir).expanduser() / f"musicnn-{MUSICNN_VERSION}"
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(
                f"musicnn path {str(p)!r} does not exist (training.pretrained_path): give a folder "
                f"with MSD_vgg/ or MTT_vgg/ checkpoints or the file from "
                f"`pip download musicnn=={MUSICNN_VERSION} --no-deps -d DIR`"
            )
        if p.is_dir():
            found = _musicnn_dir(p)
            if found is None:
                raise ValueError(
                    f"{p}: no musicnn checkpoint folder in it (expected MSD_vgg/.index and "
                    "MSD_vgg/.data-00000-of-00001, or the same for MTT_vgg)"
                )
            return found
        if _musicnn_dir(final) is None:
            _install_atomically(p, final)
        return final
    if _musicnn_dir(final) is not None:
        return final
    with tempfile.TemporaryDirectory(prefix="musicnn-download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"musicnn=={MUSICNN_VERSION}",
               "--no-deps", "--disable-pip-version-check", "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            proc = subprocess.CompletedProcess(cmd, 1, "", str(e))
        files = sorted(Path(tmp).iterdir())
        if proc.returncode != 0 or not files:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise RuntimeError(
                f"could not download musicnn=={MUSICNN_VERSION} with pip (offline?): "
                f"{' / '.join(tail) or 'no file downloaded'}. On a machine with internet run "
                f"`pip download musicnn=={MUSICNN_VERSION} --no-deps -d DIR`, copy the file here "
                "and pass it as path= (or set training.pretrained_path to it)."
            )
        return _install_atomically(files[0], final)


def _check_which(which: str) -> None:
    if which not in MUSICNN_MODELS:
        raise ValueError(f"musicnn model must be one of {', '.join(MUSICNN_MODELS)}, got {which!r}")


def read_musicnn_variables(which: str = "msd", *, path: str | Path | None = None) -> dict[str, np.ndarray]:
    """All model variables of musicnn's ``MSD_vgg``/``MTT_vgg`` checkpoint (no optimizer slots)."""
    import tensorflow as tf  # the checkpoint format is TensorFlow's

    _check_which(which)
    root = fetch_musicnn(path=path)
    folder = root / MUSICNN_MODELS[which]
    if not all((folder / f).is_file() for f in _CKPT_FILES):
        raise FileNotFoundError(f"{root}: has no {MUSICNN_MODELS[which]}/ checkpoint ({which!r})")
    # The files are named "<folder>/.index": the prefix is the folder plus a slash (its
    # "checkpoint" file points to the author's machine, so tf.train.latest_checkpoint fails).
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + os.sep)
    return {
        name: reader.get_tensor(name)
        for name in sorted(reader.get_variable_to_shape_map())
        if "/Adam" not in name and name not in ("beta1_power", "beta2_power")
    }


def _musicnn_weight_map(backbone: keras.Model) -> dict[str, tuple[keras.Variable, str]]:
    """checkpoint variable name -> (Keras variable, description)."""
    out: dict[str, tuple[keras.Variable, str]] = {}
    bns = ["input_bn"] + [f"bn{i}" for i in range(1, 6)]
    for i, layer_name in enumerate(bns):
        layer = backbone.get_layer(layer_name)
        prefix = "batch_normalization" + (f"_{i}" if i else "")
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            out[f"{prefix}/{attr}"] = (getattr(layer, attr), f"{layer_name}.{attr}")
    for i in range(1, 6):
        layer = backbone.get_layer(f"conv{i}")
        out[f"{i}CNN/kernel"] = (layer.kernel, f"conv{i}.kernel")
        out[f"{i}CNN/bias"] = (layer.bias, f"conv{i}.bias")
    return out


def load_musicnn_weights(backbone: keras.Model, which: str = "msd", *, path: str | Path | None = None) -> keras.Model:
    """Copy musicnn's ``MSD_vgg`` (``which="msd"``) or ``MTT_vgg`` weights into ``backbone``.

    ``backbone`` comes from :func:`build_musicnn_backbone`. Every shape is checked; the
    50-tag output layer (``dense/*``) is left out on purpose, any other checkpoint variable
    without a Keras counterpart raises.
    """
    _check_which(which)
    try:
        mapping = _musicnn_weight_map(backbone)
    except ValueError as e:
        raise ValueError(f"backbone {backbone.name!r} is not a musicnn_vgg backbone: {e}") from None
    # Both checkpoints have the same variable shapes but different pools: check the latter.
    pools = tuple(
        (tuple(backbone.get_layer(f"pool{i}").pool_size), tuple(backbone.get_layer(f"pool{i}").strides))
        for i in range(1, 6)
    )
    if pools != MUSICNN_POOLS[which]:
        other = [v for v, p in MUSICNN_POOLS.items() if p == pools]
        raise ValueError(
            f"backbone pools {pools} are not those of {MUSICNN_MODELS[which]}"
            + (f" (they are {other[0]!r}'s): build it with variant={which!r}" if other else "")
        )
    values = read_musicnn_variables(which, path=path)
    unmapped = sorted(n for n in values if n not in mapping and not n.startswith("dense/"))
    missing = sorted(n for n in mapping if n not in values)
    if unmapped or missing:
        raise ValueError(
            f"musicnn {MUSICNN_MODELS[which]} checkpoint does not match the Keras port: "
            f"unmapped checkpoint variables {unmapped}, missing variables {missing}"
        )
    wrong = [
        f"{name!r} has shape {values[name].shape} but Keras {desc} has {tuple(var.shape)}"
        for name, (var, desc) in mapping.items()
        if tuple(var.shape) != values[name].shape
    ]
    if wrong:
        raise ValueError(
            f"musicnn {MUSICNN_MODELS[which]} does not fit the backbone (build it with "
            f"model.width_multiplier=1): {'; '.join(wrong)}"
        )
    for name, (var, _desc) in mapping.items():
        var.assign(values[name].astype(var.dtype))
    return backbone


# Tensors of musicnn's own TF1 graph (same names in MSD_vgg/.meta and MTT_vgg/.meta).
MUSICNN_GRAPH_TENSORS = {
    "input": "model/Placeholder:0",  # log-mel [B, 187, 96], time first
    "is_training": "model/Placeholder_2:0",
    "pool5": "model/max_pooling2d_4/MaxPool:0",  # [B, T5, 1, 128]
    "logits": "model/dense/BiasAdd:0",  # [B, 50], needs exactly 187 frames
}


def musicnn_reference_outputs(
    checkpoint_dir: str | Path, log_mel: np.ndarray, *, outputs: tuple[str, ...] = ("pool5", "logits")
) -> dict[str, np.ndarray]:
    """Run musicnn's original graph (``<checkpoint_dir>/.meta``) on ``log_mel [B, frames, 96]``.

    The reference the Keras port is tested against: the inference part of the saved TF1
    graph, with each variable replaced by its checkpoint value, evaluated with
    ``is_training=False`` in a ``tf.compat.v1.Session``. The input's time axis is made
    dynamic so that ``pool5`` can be taken for any length.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    folder = Path(checkpoint_dir)
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    names = [MUSICNN_GRAPH_TENSORS[k].split(":")[0] for k in outputs]
    # The .meta also holds the training graph, whose recorded shapes TF 2 rejects on import.
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, names)
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + os.sep)
    for node in graph_def.node:
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
        if node.op == "VariableV2":  # freeze: variable -> constant with the checkpoint value
            value = reader.get_tensor(node.name)
            node.op = "Const"
            node.ClearField("attr")
            node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        elif node.name == MUSICNN_GRAPH_TENSORS["input"].split(":")[0]:
            node.attr["shape"].shape.CopyFrom(tf.TensorShape([None, None, 96]).as_proto())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        feed = {MUSICNN_GRAPH_TENSORS["input"]: np.asarray(log_mel, np.float32),
                MUSICNN_GRAPH_TENSORS["is_training"]: False}
        values = sess.run([MUSICNN_GRAPH_TENSORS[k] for k in outputs], feed)
    return dict(zip(outputs, values, strict=True))


def _cfg_value(cfg: ExperimentConfig, key: str) -> object:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def check_pretrained_config(cfg: ExperimentConfig) -> None:
    """Raise ValueError naming every config key that does not fit ``training.pretrained``."""
    which = cfg.training.pretrained
    if which is None:
        return
    required = SHORT_CHUNK_REQUIRED if which == "short_chunk_cnn" else MUSICNN_REQUIRED
    wrong = [
        f"'{key}' must be {' or '.join(repr(v) for v in allowed)} (got {_cfg_value(cfg, key)!r})"
        for key, allowed in required.items()
        if _cfg_value(cfg, key) not in allowed
    ]
    if wrong:
        raise ValueError(f"training.pretrained={which!r} does not fit this config: config key " + "; config key ".join(wrong))


def find_backbone(model: keras.Model) -> keras.Model:
    """``model`` itself if it is named 'backbone', else its sub-model layer 'backbone'."""
    if model.name == "backbone":
        return model
    try:
        layer = model.get_layer("backbone")
    except ValueError:
        layer = None
    if not isinstance(layer, keras.Model):
        raise ValueError(f"model {model.name!r} has no sub-model named 'backbone'")
    return layer


def short_chunk_weights_path(cfg: ExperimentConfig) -> Path:
    """``training.pretrained_path`` or the default short-chunk CNN weights file."""
    raw = cfg.training.pretrained_path or f"{DEFAULT_CACHE}/short_chunk_cnn.weights.h5"
    return Path(raw).expanduser()


def load_pretrained_backbone(model_or_backbone: keras.Model, cfg: ExperimentConfig) -> keras.Model | None:
    """Load ``training.pretrained`` weights into the backbone; return it (None: nothing loaded).

    Nothing is loaded for ``training.transfer: scratch`` (paper §2.4, method 3) or
    ``training.pretrained: null``. Freezing is the training code's job.
    """
    if cfg.training.transfer == "scratch" or cfg.training.pretrained is None:
        return None
    check_pretrained_config(cfg)
    backbone = find_backbone(model_or_backbone)
    which = cfg.training.pretrained
    if which in ("musicnn_msd_vgg", "musicnn_mtt_vgg"):
        return load_musicnn_weights(backbone, which.split("_")[1], path=cfg.training.pretrained_path)
    weights = short_chunk_weights_path(cfg)
    if not weights.is_file():
        raise FileNotFoundError(
            f"short-chunk CNN weights {str(weights)!r} not found (training.pretrained_path). "
            f"Create it from a PyTorch ShortChunkCNN state_dict with `python "
            f"scripts/convert_torch_short_chunk.py MODEL.pth --out {weights}`, or by pre-training "
            "on MTG-Jamendo (keras-inst-pretrain), or set training.pretrained_path to an existing "
            ".weights.h5 file."
        )
    try:
        backbone.load_weights(weights)
    except ValueError as e:
        raise ValueError(f"{weights}: does not fit the configured backbone ({e})") from None
    return backbone
