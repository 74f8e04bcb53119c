"""musicnn's files: the vendored MSD_vgg test checkpoint, its original graph's outputs, fetching
from folders, wheels, sdists and the cache (never the network), checkpoint writing.

tests/assets/musicnn/MSD_vgg is musicnn 0.1.0's MSD_vgg checkpoint without its Adam slots plus its
original .meta graph; tests/assets/musicnn_golden/msd_vgg.npz holds the outputs of that graph with
the original, unstripped checkpoint (see tests/assets/musicnn/make_test_data.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keras_inst.models import musicnn as M

DATA = Path(__file__).resolve().parents[1] / "assets"
MUSICNN = DATA / "musicnn"
GOLDEN = DATA / "musicnn_golden" / "msd_vgg.npz"
CKPT_FILES = (".index", ".data-00000-of-00001", ".meta")


def test_vendored_data_sizes_and_licence():
    sizes = {f: (MUSICNN / "MSD_vgg" / f).stat().st_size for f in CKPT_FILES}
    # 607,030 float32 model weights, no optimizer slots (the wheel's file is 7.3 MB).
    assert sizes[".data-00000-of-00001"] == 607030 * 4
    assert sizes[".meta"] == 560489  # musicnn's graph file, unchanged
    assert "Permission to use, copy, modify" in (MUSICNN / "LICENSE.md").read_text()
    assert GOLDEN.stat().st_size < 1_000_000


def test_vendored_checkpoint_reproduces_original_outputs():
    with np.load(GOLDEN) as golden:
        golden = {k: golden[k] for k in golden.files}
    ref = M.musicnn_reference_outputs(MUSICNN / "MSD_vgg", golden["log_mel"])
    # float32 through 5 conv blocks: another CPU kind's kernels (AVX2 vs AVX-512) round differently
    # by up to ~5e-6 on values ~1 (measured), so the bound is float32's few-ulps scale, not exact
    np.testing.assert_allclose(ref["pool5"], golden["pool5"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ref["logits"], golden["logits"], rtol=1e-5, atol=1e-5)


def test_written_checkpoint_reads_back_bit_identical(tmp_path):
    values = M.read_musicnn_variables("msd", path=MUSICNN)
    M.write_musicnn_checkpoint(values, tmp_path / "copy" / "MSD_vgg")
    assert sorted(p.name for p in (tmp_path / "copy" / "MSD_vgg").iterdir()) == sorted(CKPT_FILES[:2])
    again = M.read_musicnn_variables("msd", path=tmp_path / "copy")
    assert sorted(again) == sorted(values) and len(values) == 36  # 5 convs x 2, 6 BNs x 4, dense x 2
    assert all(again[k].dtype == values[k].dtype and np.array_equal(again[k], values[k]) for k in values)


# --- fetching --------------------------------------------------------------------------------


def _fake_wheel(path: Path) -> Path:
    """A wheel laid out like musicnn's, holding the vendored MSD_vgg and a path-traversal member."""
    with zipfile.ZipFile(path, "w") as zf:
        for f in CKPT_FILES:
            zf.write(MUSICNN / "MSD_vgg" / f, f"musicnn/MSD_vgg/{f}")
        zf.writestr("musicnn/models.py", "# not extracted\n")
        zf.writestr("musicnn-0.1.0.dist-info/LICENSE.md", (MUSICNN / "LICENSE.md").read_text())
        zf.writestr("../escape.txt", "must not be written\n")
    return path


def test_fetch_from_user_folders(tmp_path):
    assert M.fetch_musicnn(cache_dir=tmp_path / "cache", path=MUSICNN) == MUSICNN
    unpacked = tmp_path / "musicnn-0.1.0"  # an unpacked wheel: the checkpoints are under musicnn/
    shutil.copytree(MUSICNN / "MSD_vgg", unpacked / "musicnn" / "MSD_vgg")
    assert M.fetch_musicnn(cache_dir=tmp_path / "cache", path=unpacked) == unpacked / "musicnn"
    assert not (tmp_path / "cache").exists()  # folders are used in place


def test_fetch_from_wheel_and_sdist_into_cache(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"tried to run {args}")

    monkeypatch.setattr(M.subprocess, "run", no_network)
    wheel = _fake_wheel(tmp_path / "musicnn-0.1.0-py3-none-any.whl")
    cache = tmp_path / "cache"
    root = M.fetch_musicnn(cache_dir=cache, path=wheel)
    assert root == cache / "musicnn-0.1.0"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["LICENSE.md"] + [f"MSD_vgg/{f}" for f in sorted(CKPT_FILES)]
    assert not (tmp_path / "escape.txt").exists() and not (cache / "escape.txt").exists()
    assert [p.name for p in cache.iterdir()] == ["musicnn-0.1.0"]  # no temp folder left
    wheel.unlink()
    assert M.fetch_musicnn(cache_dir=cache) == root  # cached: no download
    assert np.array_equal(
        M.read_musicnn_variables("msd", path=root)["3CNN/kernel"],
        M.read_musicnn_variables("msd", path=MUSICNN)["3CNN/kernel"],
    )

    sdist = tmp_path / "musicnn-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf_:
        for f in CKPT_FILES:
            tf_.add(MUSICNN / "MSD_vgg" / f, f"musicnn-0.1.0/musicnn/MSD_vgg/{f}")
    root2 = M.fetch_musicnn(cache_dir=tmp_path / "cache2", path=sdist)
    assert sorted(p.name for p in (root2 / "MSD_vgg").iterdir()) == sorted(CKPT_FILES)


def test_fetch_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*does not exist.*pip download musicnn==0.1.0"):
        M.fetch_musicnn(cache_dir=tmp_path, path=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no musicnn checkpoint folder"):
        M.fetch_musicnn(cache_dir=tmp_path, path=DATA / "musicnn_golden")
    with pytest.raises(ValueError, match="holds no musicnn checkpoint"):
        M.fetch_musicnn(cache_dir=tmp_path / "c", path=GOLDEN)  # an .npz is a zip file
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(ValueError, match="notes.txt: not a wheel"):
        M.fetch_musicnn(cache_dir=tmp_path / "c", path=tmp_path / "notes.txt")
    assert not (tmp_path / "c" / "musicnn-0.1.0").exists()

    calls = []

    def offline(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for musicnn==0.1.0")

    monkeypatch.setattr(M.subprocess, "run", offline)
    with pytest.raises(RuntimeError, match=r"offline\?.*No matching distribution.*training.pretrained_path"):
        M.fetch_musicnn(cache_dir=tmp_path / "empty")
    assert calls and calls[0][1:] == ["-m", "pip", "download", "musicnn==0.1.0", "--no-deps",
                                      "--disable-pip-version-check", "-d", calls[0][-1]]
    assert not (tmp_path / "empty" / "musicnn-0.1.0").exists()
