"""A run records where its data are (data_locations.json) and configs read back with absolute paths."""

from __future__ import annotations

import json

import pytest

from keras_inst.config.io import load_config
from keras_inst.runtime.artifacts import RUN_DATA_LOCATIONS
from keras_inst.runtime.data_locations import (
    missing_data_hint,
    record_data_locations,
    resolve_data_locations,
)


@pytest.fixture
def demo_cfg():
    return load_config("demo", ["data.roots.rendered=data/rendered", "data.cache_dir=data/cache"])


def test_record_makes_every_data_path_absolute(demo_cfg, tmp_path):
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    path = record_data_locations(demo_cfg, run_dir, base=tmp_path)
    assert path == run_dir / RUN_DATA_LOCATIONS
    rec = json.loads(path.read_text())
    assert rec["working_directory"] == str(tmp_path)
    assert rec["roots"] == {"rendered": str(tmp_path / "data" / "rendered")}
    assert rec["cache_dir"] == str(tmp_path / "data" / "cache")
    assert rec["held_out_root"] is None and rec["soundfont"] is None


def test_resolve_keeps_absolute_and_home_paths(tmp_path):
    cfg = load_config("demo", [f"data.roots.rendered={tmp_path}", "data.cache_dir=~/.cache/x"])
    out = resolve_data_locations(cfg, tmp_path)
    assert out.data.roots["rendered"] == str(tmp_path) and out.data.cache_dir == "~/.cache/x"


def test_missing_data_names_the_path_and_the_fix(demo_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    cfg = resolve_data_locations(demo_cfg, run_dir)  # found nowhere: stays relative
    assert cfg.data.roots["rendered"] == "data/rendered"
    hint = missing_data_hint(cfg, run_dir)
    assert hint.startswith(f"data root of 'rendered' (data/rendered) is not available (relative: looked for from {tmp_path} and above {run_dir})")
    assert str(run_dir / RUN_DATA_LOCATIONS) in hint
    (tmp_path / "data" / "rendered").mkdir(parents=True)
    assert missing_data_hint(resolve_data_locations(demo_cfg, run_dir), run_dir) is None


def test_a_broken_record_is_named(demo_cfg, tmp_path):
    (tmp_path / RUN_DATA_LOCATIONS).write_text("[1, 2]")
    with pytest.raises(ValueError, match=f"{RUN_DATA_LOCATIONS}: expected an object with 'roots'"):
        resolve_data_locations(demo_cfg, tmp_path)
