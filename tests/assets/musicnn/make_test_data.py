"""Regenerate tests/assets/musicnn/MSD_vgg and tests/assets/musicnn_golden from musicnn 0.1.0.

Usage (needs PyPI, or a downloaded wheel)::

    python tests/assets/musicnn/make_test_data.py [musicnn-0.1.0-py3-none-any.whl]

1. ``MSD_vgg/.index`` + ``.data-00000-of-00001``: the model variables of musicnn's MSD_vgg
   checkpoint, copied bit for bit under their original names, without the Adam slots
   (7.3 MB -> 2.4 MB). ``MSD_vgg/.meta``: musicnn's original graph file, unchanged.
2. ``musicnn_golden/msd_vgg.npz``: two seeded synthetic 3-s clips (``audio [2, 48000]``), their
   log-mel computed the way musicnn's training data was (librosa mel power spectrogram, 16 kHz,
   n_fft 512, hop 256, 96 Slaney mels, reflect padding as in librosa 0.7, first 187 frames,
   ``log10(10000 x + 1)``; ``log_mel [2, 187, 96]``, time first), and the outputs of musicnn's
   own graph on it with the ORIGINAL (unstripped) checkpoint: ``pool5 [2, 2, 1, 128]`` and
   ``logits [2, 50]``.
3. ``MTT_musicnn/graph.pb``: the inference part of musicnn's MTT_musicnn ``.meta`` graph (the
   nodes computing ``penultimate`` and ``logits``, recorded shapes dropped), 67 kB where the
   ``.meta`` is 1.2 MB; no weights (tests write random ones, see tests/models/test_musicnn_cnn.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import librosa
import numpy as np

from keras_inst.models.musicnn import (
    GRAPH_FILE,
    fetch_musicnn,
    musicnn_reference_outputs,
    read_graph_def,
    read_musicnn_variables,
    write_musicnn_checkpoint,
)

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent / "musicnn_golden"


def synthetic_clips(seed: int = 0, sr: int = 16000, seconds: float = 3.0) -> np.ndarray:
    """Two clips ``[2, samples]``: a chord with vibrato plus noise bursts; a bass line plus clicks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    chord = sum(np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t)) for f in (220, 277.2, 329.6))
    bursts = rng.normal(0, 0.3, t.size) * (np.sin(2 * np.pi * 2 * t) > 0.7)
    bass = np.sin(2 * np.pi * (55 + 55 * (t % 0.5 > 0.25)) * t)
    clicks = np.zeros_like(t)
    clicks[:: sr // 4] = 1.0
    clicks = np.convolve(clicks, np.exp(-np.arange(400) / 60.0) * rng.normal(0, 1, 400))[: t.size]
    clips = np.stack([0.2 * chord + bursts, 0.5 * bass + 0.5 * clicks])
    return (0.9 * clips / np.abs(clips).max(axis=1, keepdims=True)).astype(np.float32)


def musicnn_log_mel(audio: np.ndarray, frames: int = 187) -> np.ndarray:
    """musicnn's front end on ``audio [B, samples]`` -> ``[B, frames, 96]`` (time first)."""
    mel = librosa.feature.melspectrogram(
        y=audio, sr=16000, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect"
    )  # [B, 96, T]
    return np.log10(10000.0 * mel + 1.0).transpose(0, 2, 1)[:, :frames].astype(np.float32)


def write_inference_graph(root: Path, checkpoint: str = "MTT_musicnn") -> Path:
    """``<checkpoint>/graph.pb``: the inference sub-graph of musicnn's ``.meta`` (no weights)."""
    graph_def = read_graph_def(root / checkpoint, ("penultimate", "logits"))
    for node in graph_def.node:
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    out = HERE / checkpoint / GRAPH_FILE
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(graph_def.SerializeToString())
    return out


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = fetch_musicnn(cache_dir=tmp, path=argv[0] if argv else None)
        values = read_musicnn_variables("msd", path=root)
        out = HERE / "MSD_vgg"
        shutil.rmtree(out, ignore_errors=True)
        write_musicnn_checkpoint(values, out)
        shutil.copyfile(root / "MSD_vgg" / ".meta", out / ".meta")
        shutil.copyfile(root / "LICENSE.md", HERE / "LICENSE.md")
        again = read_musicnn_variables("msd", path=HERE)
        if sorted(again) != sorted(values) or any(not np.array_equal(again[k], values[k]) for k in values):
            raise RuntimeError("stripped checkpoint differs from the original")

        audio = synthetic_clips()
        log_mel = musicnn_log_mel(audio)
        ref = musicnn_reference_outputs(root / "MSD_vgg", log_mel)
        GOLDEN.mkdir(exist_ok=True)
        np.savez_compressed(GOLDEN / "msd_vgg.npz", audio=audio, log_mel=log_mel, **ref)
        graph = write_inference_graph(root)
    print(f"wrote {out}, {graph} and {GOLDEN / 'msd_vgg.npz'}")


if __name__ == "__main__":
    main(sys.argv[1:])
