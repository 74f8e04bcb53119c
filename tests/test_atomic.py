"""keras_inst.atomic: a failed write leaves the old file, a good one replaces it, stale temps go."""

import json
import os

import pytest

from keras_inst import atomic


def test_write_json_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "state.json"
    atomic.write_json(p, {"epoch": 1})
    atomic.write_json(p, {"epoch": 2})
    assert json.loads(p.read_text()) == {"epoch": 2}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["state.json"]


def test_failed_writer_keeps_the_old_file(tmp_path):
    p = tmp_path / "model.keras"
    p.write_text("old")

    def writer(tmp):
        assert tmp.suffix == ".keras" and tmp.name.startswith(".model.keras.tmp-")
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic.write_with(p, writer)
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["model.keras"]


def test_temp_path_keeps_every_suffix(tmp_path):
    assert atomic.temp_path(tmp_path / "b.weights.h5").name == f".b.weights.h5.tmp-{os.getpid()}.weights.h5"
    assert atomic.temp_path(tmp_path / "index.json").name == f".index.json.tmp-{os.getpid()}.json"


def test_clean_stale_removes_only_temporaries(tmp_path):
    (tmp_path / f".a.json.tmp-{os.getpid() + 1}.json").write_text("x")
    (tmp_path / ".b.tmp-7").mkdir()
    (tmp_path / "a.json").write_text("{}")
    assert atomic.clean_stale(tmp_path) == 2
    assert [x.name for x in tmp_path.iterdir()] == ["a.json"]


def test_publish_dir_keep_and_replace(tmp_path):
    def folder(name, text):
        d = tmp_path / name
        d.mkdir()
        (d / "f.txt").write_text(text)
        return d

    final = tmp_path / "out"
    assert atomic.publish_dir(folder(".a", "first"), final, if_exists="keep") is True
    assert atomic.publish_dir(folder(".b", "second"), final, if_exists="keep") is False  # first wins
    assert (final / "f.txt").read_text() == "first" and not (tmp_path / ".b").exists()
    assert atomic.publish_dir(folder(".c", "third"), final, if_exists="replace") is True
    assert (final / "f.txt").read_text() == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left aside
    with pytest.raises(ValueError, match="if_exists must be 'keep' or 'replace'"):
        atomic.publish_dir(folder(".d", "x"), final, if_exists="merge")
