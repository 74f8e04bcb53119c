"""``python -m keras_inst.data preview``: WAV + PNG + sidecar per example, from the training path."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
from test_pipeline import write_slakh_tree

from keras_inst.config.io import load_config
from keras_inst.data.cache.build import build_cache
from keras_inst.data.cli import main as data_main
from keras_inst.data.datasets import read_dataset
from keras_inst.data.mixing import RecipeSampler
from keras_inst.data.pipeline import read_datasets, source_table, training_dataset
from keras_inst.data.splits import load_or_make_split
from keras_inst.taxonomy import CLASSES, close


def preview_and_stream(tmp_path: Path, *extra: str, n: int, seed: int):
    """(preview folder, config, mixes, labels): ``n`` examples of seed ``seed`` written by the
    preview CLI on a 6-song tree, and the same examples through the training pipeline."""
    root = write_slakh_tree(tmp_path / "rendered", n_songs=6, seed=2)
    songs, _ = read_dataset("rendered", root)
    build_cache(songs, tmp_path / "cache", sample_rate=16000, workers=1, progress=False)
    overrides = ["data.datasets=[rendered]", f"data.roots.rendered={root}",
                 f"data.cache_dir={tmp_path / 'cache'}", "training.transfer=scratch",
                 "training.pretrained=null", *extra]
    out = tmp_path / "preview"
    argv = ["preview", "--config", "paper", "--n", str(n), "--out", str(out), "--seed", str(seed)]
    for o in overrides:
        argv += ["--set", o]
    assert data_main(argv) == 0

    cfg = load_config("paper", overrides)
    split = load_or_make_split(cfg, read_datasets(cfg)[0])
    from keras_inst.data.cache.store import open_cache

    cache = open_cache(cfg.data.cache_dir, split["train"], sample_rate=16000)
    sampler = RecipeSampler(source_table(cfg, cache, split["train"]), cfg.mixing, cfg.effects, seed=seed)
    x, y = next(iter(training_dataset(cfg, sampler, batch_size=n)))
    return out, cfg, x, y


def test_preview_writes_what_training_uses(tmp_path: Path) -> None:
    # the same examples through the training pipeline: seed 7, examples 0..2
    out, cfg, x, y = preview_and_stream(tmp_path, n=3, seed=7)
    index = (out / "index.md").read_text()
    for i in range(3):
        side = json.loads((out / f"example_{i:05d}.json").read_text())
        assert side["example"] == i and side["seed"] == 7
        wav, sr = sf.read(out / side["wav"], dtype="float32")
        assert sr == 16000 and wav.shape == (cfg.audio.chunk_samples,)
        assert sf.info(out / side["wav"]).subtype == "PCM_16"
        np.testing.assert_allclose(wav, x[i].numpy(), atol=1.0 / 32767 + 1e-6)
        assert side["labels"] == [c for c, v in zip(CLASSES, y[i].numpy(), strict=True) if v]
        # labels = closed union of the audible sources' classes
        audible = [c for s in side["sources"] if s["audible"] for c in s["classes"]]
        assert set(side["labels"]) == set(close(audible))
        assert side["mixing"] in ("musical", "non-musical") and side["dataset"] == "rendered"
        for s in side["sources"]:
            assert s["raw_labels"][0].startswith("program ")
            assert s["stem"].startswith(s["song"] + "/")
            if side["mixing"] == "musical":
                assert "pitch_shift" not in s["effects"] and "time_stretch" not in s["effects"]
        png = (out / side["png"]).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 300 and height > 150
        assert side["wav"] in index and side["png"] in index


def test_preview_names_the_ambience_bed_and_the_negatives(tmp_path: Path) -> None:
    out, cfg, x, y = preview_and_stream(
        tmp_path, "effects.ambience.probability=1.0", "effects.ambience.negative_probability=0.5",
        "effects.ambience.snr_db=[5.0,25.0]", n=8, seed=3)
    sides = [json.loads((out / f"example_{i:05d}.json").read_text()) for i in range(8)]
    negatives = [s for s in sides if s["ambience"]["negative"]]
    assert 0 < len(negatives) < 8  # 8 draws at p 0.5 (seed 3): both kinds occur
    index = (out / "index.md").read_text()
    for i, side in enumerate(sides):
        bed = side["ambience"]
        assert bed["texture"] in ("rain", "surf", "wind", "rumble")  # every mix has a bed at p 1
        np.testing.assert_allclose(sf.read(out / side["wav"], dtype="float32")[0], x[i].numpy(),
                                   atol=1.0 / 32767 + 1e-6)  # the bed is in what training hears
        if bed["negative"]:
            assert side["mixing"] == "negative (ambience only)" and side["sources"] == []
            assert side["labels"] == [] and not y[i].numpy().any()
            assert -40.0 <= bed["level_dbfs"] <= -10.0  # negative_level_db's default range
            rms_db = 20 * np.log10(np.sqrt(np.mean(x[i].numpy() ** 2)))
            if np.abs(x[i].numpy()).max() < 0.999 * cfg.mixing.peak_normalize:
                assert abs(rms_db - bed["level_dbfs"]) < 0.5  # the level the sidecar names
            else:  # a peaky bed (rain: crest 20-26 dB) was brought down by the peak normalisation
                assert rms_db < bed["level_dbfs"]
            assert f"{bed['texture']} bed at {bed['level_dbfs']} dBFS" in index
        else:
            assert side["mixing"] in ("musical", "non-musical") and side["sources"]
            assert 5.0 <= bed["snr_db"] <= 25.0 and "snr_db" in bed
            assert f"{bed['texture']} bed at {bed['snr_db']} dB SNR" in index
