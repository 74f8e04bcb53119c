"""musicnn 0.1.0's files: fetching its checkpoints, reading and writing them, its TF1 graphs.

musicnn (Pons & Serra, ISC licence, on PyPI) ships four 50-tag taggers as TF1 checkpoints saved
with the prefix ``<model>/``, so the files are ``MSD_vgg/.index``, ``MSD_vgg/.data-00000-of-00001``
and the graph ``MSD_vgg/.meta``: the VGGs ``MSD_vgg``/``MTT_vgg`` and the musically motivated
CNNs ``MSD_musicnn``/``MTT_musicnn`` (:data:`MUSICNN_CHECKPOINTS`). :func:`fetch_musicnn` finds
them in a folder, a downloaded wheel/sdist or the cache (else ``pip download``s the release);
:func:`read_checkpoint_variables` returns a checkpoint's model variables,
:func:`write_musicnn_checkpoint` writes variables back in the same layout (how the vendored test
checkpoint was stripped of its optimizer slots) and :func:`musicnn_reference_outputs` runs
musicnn's original graph, the reference for the Keras ports in
:mod:`keras_inst.models.pretrained` (VGG) and :mod:`keras_inst.models.musicnn_cnn` (musicnn).
The tag names are musicnn's ``configuration.py``'s (:data:`MUSICNN_LABELS`).
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
from typing import Any

import numpy as np

from keras_inst import atomic

MUSICNN_VERSION = "0.1.0"
MUSICNN_MODELS = {"msd": "MSD_vgg", "mtt": "MTT_vgg"}  # the VGG variants of pretrained.py
# Every checkpoint folder of the wheel (MSD_musicnn_big is not in it: musicnn's README).
MUSICNN_CHECKPOINTS = ("MSD_vgg", "MTT_vgg", "MSD_musicnn", "MTT_musicnn")

# The 50 tags in output order, as musicnn's configuration.py lists them (MTT: MagnaTagATune's
# top-50 tags; MSD: the Million Song Dataset's top-50 last.fm tags, capitals as given).
MTT_LABELS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)
MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)
MUSICNN_LABELS = {"MTT": MTT_LABELS, "MSD": MSD_LABELS}  # by the checkpoint name's prefix
_CKPT_FILES = (".index", ".data-00000-of-00001")  # prefix "<model>/" + these suffixes
DEFAULT_CACHE = "~/.cache/keras_inst/pretrained"  # downloaded and converted backbone weights


def _musicnn_dir(folder: Path, checkpoint: str | None = None) -> Path | None:
    """The folder holding musicnn checkpoint folders (``checkpoint``, else any of
    :data:`MUSICNN_CHECKPOINTS`) at or just below ``folder``, if any."""
    wanted = MUSICNN_CHECKPOINTS if checkpoint is None else (checkpoint,)
    for cand in (folder, folder / "musicnn"):
        if any(all((cand / m / f).is_file() for f in _CKPT_FILES) for m in wanted):
            return cand
    return None


def _extract_archive(archive: Path, dest: Path) -> None:
    """Extract musicnn's checkpoints and licence from a wheel or sdist into ``dest``."""
    wanted = tuple(f"musicnn/{m}/" for m in MUSICNN_CHECKPOINTS)

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
        raise ValueError(f"{archive}: holds no musicnn checkpoint (musicnn/MSD_vgg/.index ...)")


def _install_atomically(archive: Path, final: Path, checkpoint: str | None = None) -> Path:
    """Extract ``archive`` into a temp folder beside ``final`` and rename it into place.

    A ``final`` without ``checkpoint`` (an install by an older keras_inst that extracted only
    the VGGs) is replaced by renames, so readers never see it half-written.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".musicnn-", dir=final.parent))
    try:
        _extract_archive(archive, tmp)
        if final.exists() and _musicnn_dir(final) is None:  # left over from a broken install
            shutil.rmtree(final)
        stale = final.exists() and _musicnn_dir(final, checkpoint) is None
        # "keep": another process may have installed it first.
        atomic.publish_dir(tmp, final, if_exists="replace" if stale else "keep")
        if _musicnn_dir(final, checkpoint) is None:
            raise ValueError(f"{final}: no musicnn {checkpoint or ''} checkpoint after installing {archive}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def fetch_musicnn(
    *, cache_dir: str | Path = DEFAULT_CACHE, path: str | Path | None = None, checkpoint: str | None = None
) -> Path:
    """The folder holding musicnn's checkpoint folders (``MSD_vgg/``, ``MTT_musicnn/`` ...).

    ``path``: a folder with those checkpoints (or musicnn's wheel/sdist unpacked), or the
    downloaded wheel/tarball itself (extracted into the cache). Without it: the cache, else
    ``pip download musicnn==0.1.0 --no-deps`` (needs PyPI) extracted atomically into the cache.
    ``checkpoint`` (a name of :data:`MUSICNN_CHECKPOINTS`): a cache lacking it is re-installed.
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
        if _musicnn_dir(final, checkpoint) is None:
            _install_atomically(p, final, checkpoint)
        return final
    if _musicnn_dir(final, checkpoint) is not None:
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
        return _install_atomically(files[0], final, checkpoint)


def check_musicnn_model(which: str) -> None:
    """Raise ValueError unless ``which`` names a musicnn checkpoint ('msd' or 'mtt')."""
    if which not in MUSICNN_MODELS:
        raise ValueError(f"musicnn model must be one of {', '.join(MUSICNN_MODELS)}, got {which!r}")


def read_musicnn_variables(which: str = "msd", *, path: str | Path | None = None) -> dict[str, np.ndarray]:
    """All model variables of musicnn's ``MSD_vgg``/``MTT_vgg`` checkpoint (no optimizer slots)."""
    check_musicnn_model(which)
    return read_checkpoint_variables(MUSICNN_MODELS[which], path=path, what=repr(which))


def read_checkpoint_variables(
    checkpoint: str, *, path: str | Path | None = None, what: str = ""
) -> dict[str, np.ndarray]:
    """All model variables of the musicnn checkpoint folder ``checkpoint`` (e.g. ``MTT_musicnn``)."""
    import tensorflow as tf  # the checkpoint format is TensorFlow's

    if checkpoint not in MUSICNN_CHECKPOINTS:
        raise ValueError(f"musicnn checkpoint must be one of {', '.join(MUSICNN_CHECKPOINTS)}, got {checkpoint!r}")
    root = fetch_musicnn(path=path, checkpoint=checkpoint)
    folder = root / checkpoint
    if not all((folder / f).is_file() for f in _CKPT_FILES):
        raise FileNotFoundError(f"{root}: has no {checkpoint}/ checkpoint" + (f" ({what})" if what else ""))
    # The files are named "<folder>/.index": the prefix is the folder plus a slash (its
    # "checkpoint" file points to the author's machine, so tf.train.latest_checkpoint fails).
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + os.sep)
    return {
        name: reader.get_tensor(name)
        for name in sorted(reader.get_variable_to_shape_map())
        if "/Adam" not in name and name not in ("beta1_power", "beta2_power")
    }


def write_musicnn_checkpoint(values: dict[str, np.ndarray], folder: str | Path) -> None:
    """A TF1 checkpoint holding exactly ``values`` under their names, prefix ``<folder>/``.

    The layout :func:`read_musicnn_variables` reads (``<folder>/.index`` ...); no graph file.
    """
    import tensorflow as tf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        # Python names only need to be unique; the checkpoint keys come from var_list.
        variables = {n: tf.compat.v1.Variable(v, name=n.replace("/", "_")) for n, v in values.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(folder) + "/", write_meta_graph=False, write_state=False)


# Tensors of musicnn's own TF1 graphs (the same names in MSD_vgg/.meta and MTT_vgg/.meta, and
# in MSD_musicnn/.meta and MTT_musicnn/.meta).
MUSICNN_GRAPH_TENSORS = {
    "input": "model/Placeholder:0",  # log-mel [B, 187, 96], time first
    "is_training": "model/Placeholder_2:0",
    "pool5": "model/max_pooling2d_4/MaxPool:0",  # [B, T5, 1, 128]
    "logits": "model/dense/BiasAdd:0",  # [B, 50], needs exactly 187 frames
}
MUSICNN_CNN_GRAPH_TENSORS = {
    "input": "model/Placeholder:0",  # log-mel [B, 187, 96], time first
    "is_training": "model/Placeholder_2:0",
    "penultimate": "model/batch_normalization_10/batchnorm/add_1:0",  # [B, 200], after BN
    "logits": "model/dense_1/BiasAdd:0",  # [B, 50], any length
}
GRAPH_FILE = "graph.pb"  # an inference-only GraphDef, read where a folder has no .meta


def graph_tensors(checkpoint_dir: str | Path) -> dict[str, str]:
    """The tensor table of the graph in ``checkpoint_dir``: musicnn's (``*_musicnn``) or VGG's."""
    return MUSICNN_CNN_GRAPH_TENSORS if Path(checkpoint_dir).name.endswith("musicnn") else MUSICNN_GRAPH_TENSORS


def read_graph_def(checkpoint_dir: str | Path, outputs: tuple[str, ...]) -> Any:
    """The inference sub-graph computing ``outputs`` (keys of :func:`graph_tensors`), from
    ``<checkpoint_dir>/.meta`` or, without it, ``<checkpoint_dir>/graph.pb``."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    folder = Path(checkpoint_dir)
    tensors = graph_tensors(folder)
    unknown = [k for k in outputs if k not in tensors or k in ("input", "is_training")]
    if unknown:
        raise ValueError(f"{folder.name}: unknown graph outputs {unknown}; known: {', '.join(list(tensors)[2:])}")
    if (folder / ".meta").is_file():
        meta = meta_graph_pb2.MetaGraphDef()
        meta.ParseFromString((folder / ".meta").read_bytes())
        graph_def = meta.graph_def
    elif (folder / GRAPH_FILE).is_file():
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString((folder / GRAPH_FILE).read_bytes())
    else:
        raise FileNotFoundError(f"{folder}: has neither musicnn's .meta graph nor {GRAPH_FILE}")
    names = [tensors[k].split(":")[0] for k in outputs]
    # The .meta also holds the training graph, whose recorded shapes TF 2 rejects on import.
    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, names)


def musicnn_reference_outputs(
    checkpoint_dir: str | Path, log_mel: np.ndarray, *, outputs: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Run musicnn's original graph (``<checkpoint_dir>/.meta``) on ``log_mel [B, frames, 96]``.

    The reference the Keras ports are tested against: the inference part of the saved TF1
    graph, with each variable replaced by its checkpoint value, evaluated with
    ``is_training=False`` in a ``tf.compat.v1.Session``. The input's time axis is made
    dynamic so that ``pool5`` can be taken for any length. ``outputs`` default: ``("pool5",
    "logits")`` for a VGG, ``("penultimate", "logits")`` for a musicnn checkpoint.
    """
    import tensorflow as tf

    folder = Path(checkpoint_dir)
    tensors = graph_tensors(folder)
    outputs = tuple(list(tensors)[2:]) if outputs is None else outputs
    graph_def = read_graph_def(folder, outputs)
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
        elif node.name == tensors["input"].split(":")[0]:
            node.attr["shape"].shape.CopyFrom(tf.TensorShape([None, None, 96]).as_proto())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        feed = {tensors["input"]: np.asarray(log_mel, np.float32), tensors["is_training"]: False}
        values = sess.run([tensors[k] for k in outputs], feed)
    return dict(zip(outputs, values, strict=True))
