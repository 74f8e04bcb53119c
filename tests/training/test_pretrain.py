"""Pre-training on a tiny MTG-Jamendo tree in the real format: rows and split files copied byte
for byte from the real instrument TSV (CRLF, extra tag columns), MP3 audio under NN/ID.mp3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_inst.config.io import load_config
from keras_inst.data.jamendo import (
    evaluation_plan,
    load_tagging_data,
    training_chunk,
    training_dataset,
)
from keras_inst.training.pretrain import main, pretrain, sidecar_path, tag_metrics

SPLIT_ROWS = {
    "train": [
        "track_0000382",
        "track_0000383",
        "track_0002168",
        "track_0002171",
        "track_0006247",
        "track_0006249",
    ],
    "validation": ["track_0008559", "track_0008560", "track_0008561"],
    "test": ["track_0015159", "track_0015160", "track_0015161"],
}
NO_AUDIO = "track_0006250"  # listed in the TSV and the train split, audio not downloaded
SECONDS = {"track_0000383": 2.5}  # shorter than a 4 s chunk: zero padded
TINY = [
    "model.width_multiplier=0.0625",
    "model.head_units=16",
    "training.epochs=2",
    "training.steps_per_epoch=2",
    "training.batch_size=4",
    "training.num_parallel_calls=2",
    "mixing.eval_chunks_per_song=2",
]


def _rows(text: str, ids: list[str]) -> str:
    lines = text.split("\r\n")
    return "\r\n".join([lines[0]] + [ln for ln in lines if ln.split("\t")[0] in ids]) + "\r\n"


@pytest.fixture(scope="module")
def jamendo(tmp_path_factory, fixtures_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("jamendo")
    meta = fixtures_dir / "mtg_jamendo" / "metadata"
    ids = [i for v in SPLIT_ROWS.values() for i in v] + [NO_AUDIO]
    tsv_text = (meta / "autotagging_instrument.tsv").read_bytes().decode()
    (root / "metadata" / "splits" / "split-0").mkdir(parents=True)
    (root / "metadata" / "autotagging_instrument.tsv").write_bytes(_rows(tsv_text, ids).encode())
    for split in SPLIT_ROWS:
        name = f"splits/split-0/autotagging_instrument-{split}.tsv"
        (root / "metadata" / name).write_bytes(
            _rows((meta / name).read_bytes().decode(), ids).encode()
        )
    rng = np.random.default_rng(0)
    for row in _rows(tsv_text, ids).split("\r\n")[1:-1]:
        track_id, path = row.split("\t")[0], row.split("\t")[3]
        if track_id == NO_AUDIO:
            continue
        sr = 22050  # resampled to 16 kHz by the cache
        t = np.arange(int(SECONDS.get(track_id, 5.0) * sr)) / sr
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.05 * rng.standard_normal(
            t.size
        )
        out = root / "audio" / path
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, np.stack([x, x], axis=1), sr, format="MP3")  # stereo, downmixed
    return root


def _cfg(root: Path, tmp: Path, extra: list[str] = ()):
    return load_config(
        "pretrain_jamendo",
        [f"data.roots.mtg_jamendo={root}", f"data.cache_dir={tmp / 'cache'}", *TINY, *extra],
    )


def test_tagging_data_uses_tsv_vocabulary_and_official_split(
    jamendo: Path, tmp_path: Path, fixtures_dir: Path
) -> None:
    data = load_tagging_data(_cfg(jamendo, tmp_path), workers=1, progress=False)
    assert data.split_source == "official"
    assert {k: sorted(e.song_id for e in v) for k, v in data.entries.items()} == {
        k: sorted(v) for k, v in SPLIT_ROWS.items()
    }
    # The vocabulary is every tag of the TSV, including those of the track without audio.
    text = (jamendo / "metadata" / "autotagging_instrument.tsv").read_text()
    expected = sorted({t for line in text.splitlines()[1:] for t in line.split("\t")[5:]})
    assert list(data.tags) == expected and all(t.startswith("instrument---") for t in expected)
    # track_0008559 (validation) has 4 tags in 4 tab-separated columns of the real row.
    row = data.entries["validation"].index(
        next(e for e in data.entries["validation"] if e.song_id == "track_0008559")
    )
    tags = [t for t, v in zip(data.tags, data.labels["validation"][row], strict=True) if v]
    assert tags == [
        "instrument---classicalguitar",
        "instrument---doublebass",
        "instrument---drums",
        "instrument---guitar",
    ]
    short = next(e for e in data.entries["train"] if e.song_id == "track_0000383")
    assert short.num_samples == 40000  # 2.5 s at 16 kHz


def test_training_stream_is_seeded_and_resumes_exactly(jamendo: Path, tmp_path: Path) -> None:
    cfg = _cfg(jamendo, tmp_path)
    data = load_tagging_data(cfg, workers=1, progress=False)
    first = [(x.numpy(), y.numpy()) for x, y in training_dataset(data, cfg).take(3)]
    resumed = [
        (x.numpy(), y.numpy()) for x, y in training_dataset(data, cfg, start_example=4).take(2)
    ]
    for (xa, ya), (xb, yb) in zip(first[1:], resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert first[0][0].shape == (4, 64000) and first[0][1].shape == (4, len(data.tags))
    # Example 5 is the chunk training_chunk names, with its track's tags.
    lengths = np.array([e.num_samples for e in data.entries["train"]])
    track, start = training_chunk(cfg.training.seed, 5, lengths, 64000)
    expected = data.cache.chunk(data.entries["train"][track], start, 64000)
    np.testing.assert_array_equal(first[1][0][1], expected)
    np.testing.assert_array_equal(first[1][1][1], data.labels["train"][track])
    plans = [[training_chunk(seed, i, lengths, 64000) for i in range(8)] for seed in (0, 1)]
    assert plans[0] != plans[1]


def test_evaluation_plan_and_tag_metrics_golden() -> None:
    assert evaluation_plan(
        [64000, 40000, 64000 + 300], chunk_samples=64000, chunks_per_track=4
    ) == [(0, 0), (1, 0), (2, 0), (2, 100), (2, 200), (2, 300)]
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], np.float32)
    p = np.array([[0.9, 0.2], [0.1, 0.3], [0.4, 0.1], [0.6, 0.4]], np.float32)
    m = tag_metrics(y, p, ["a", "b"])
    assert m["roc_auc"] == pytest.approx(0.75) and m["pr_auc"] == pytest.approx(5 / 6)
    assert m["undefined_tags"] == ["b"] and m["per_tag"]["a"]["positives"] == 2
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        tag_metrics(y, p, ["a", "b", "c"])


class _Interrupt(Exception):
    pass


def test_pretrain_resume_and_transfer(jamendo: Path, tmp_path: Path, capsys) -> None:
    import keras

    from keras_inst.models.pretrained import load_pretrained_backbone
    from keras_inst.models.short_chunk import build_model

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise _Interrupt

    run_dir, out = tmp_path / "run", tmp_path / "weights" / "jamendo.weights.h5"
    args = [
        "--set",
        f"data.roots.mtg_jamendo={jamendo}",
        "--set",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    args += [a for s in TINY for a in ("--set", s)]
    cfg = _cfg(jamendo, tmp_path)
    with pytest.raises(_Interrupt):
        pretrain(cfg, run_dir, out=out, workers=1, verbose=0, callbacks=[StopAfterFirstEpoch()])
    assert (run_dir / "checkpoints" / "last.keras").is_file() and not out.exists()

    # Resumed by the command line in a fresh process (custom objects must load there too).
    cmd = [sys.executable, "-m", "keras_inst.pretrain", *args, "--run-dir", str(run_dir)]
    proc = subprocess.run(
        [*cmd, "--out", str(out), "--workers", "1"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming" in proc.stdout and "after epoch 1" in proc.stdout
    assert "Backbone weights:" in proc.stdout and "validation: 3 tracks" in proc.stdout
    epochs = [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]
    report = __import__("json").loads((run_dir / "report.json").read_text())
    assert report["validation"]["tracks"] == 3 and report["test"]["tracks"] == 3
    assert len(report["meta"]["tags"]) == len(report["validation"]["per_tag"])
    assert 0.0 <= report["validation"]["loss"] < 10 and (run_dir / "report.md").is_file()
    meta = __import__("json").loads(sidecar_path(out).read_text())
    assert meta["tags"] == report["meta"]["tags"] and meta["model"]["width_multiplier"] == 0.0625

    # Transfer: a fresh 15-class model of the fine-tuning config gets exactly the trained backbone.
    trained = keras.saving.load_model(run_dir / "model.keras").get_layer("backbone")
    ft = load_config(
        "paper",
        [
            *TINY,
            "training.transfer=finetune",
            "training.pretrained=short_chunk_cnn",
            f"training.pretrained_path={out}",
        ],
    )
    fresh = build_model(ft)
    before = [w.copy() for w in fresh.get_layer("backbone").get_weights()]
    assert load_pretrained_backbone(fresh, ft) is fresh.get_layer("backbone")
    after = fresh.get_layer("backbone").get_weights()
    assert len(after) == len(trained.get_weights()) > 0
    for a, b in zip(after, trained.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))

    # A finished run is not trained again; a deleted weights file is written again.
    out.unlink()
    assert main([*args, "--run-dir", str(run_dir), "--out", str(out), "--workers", "1"]) == 0
    assert "already complete" in capsys.readouterr().out and out.is_file()


def test_bad_inputs_name_the_key(jamendo: Path, tmp_path: Path, capsys) -> None:
    cfg = _cfg(jamendo, tmp_path)
    with pytest.raises(ValueError, match="weights.h5"):
        pretrain(cfg, tmp_path / "r1", out=tmp_path / "w.h5")
    with pytest.raises(ValueError, match="training.transfer"):
        pretrain(
            _cfg(
                jamendo,
                tmp_path,
                ["training.transfer=finetune", "training.pretrained=short_chunk_cnn"],
            ),
            tmp_path / "r2",
        )
    with pytest.raises(ValueError, match="data.datasets"):
        pretrain(_cfg(jamendo, tmp_path, ["data.datasets=[slakh]"]), tmp_path / "r3")
    assert (
        main(
            [
                "--set",
                "data.roots.mtg_jamendo=" + str(tmp_path / "nowhere"),
                "--run-dir",
                str(tmp_path / "r4"),
                "--out",
                str(tmp_path / "x.weights.h5"),
            ]
        )
        == 2
    )
    assert "data.roots.mtg_jamendo" in capsys.readouterr().err
    assert not (tmp_path / "r4").exists()  # checked before the run directory is made
