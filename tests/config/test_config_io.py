"""Config files and overrides: shipped files round-trip, typed nested overrides, base chains,
malformed files, YAML number quirks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from keras_inst.config.io import apply_overrides, dump_config, from_dict, load_config
from keras_inst.config.schema import ExperimentConfig

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_loads_and_round_trips(name):
    c = load_config(name)
    assert isinstance(c, ExperimentConfig)
    again = from_dict(yaml.safe_load(dump_config(c)))
    assert again == c


def test_overrides_are_typed_and_nested():
    c = load_config("paper", ["mixing.p_musical=0.25", "model.channels=[8,8,8,8,8,8,16]", "data.roots.slakh=/d/slakh", "training.mixed_precision=null"])
    assert c.mixing.p_musical == 0.25
    assert c.model.channels == (8, 8, 8, 8, 8, 8, 16)
    assert dict(c.data.roots) == {"slakh": "/d/slakh"}
    assert c.training.mixed_precision is None


def test_trainable_blocks_round_trips_through_yaml_and_set(tmp_path):
    import argparse

    from keras_inst.config.io import add_config_arguments, save_config

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, default="demo")
    args = parser.parse_args(["--set", "training.trainable_blocks=2"])
    c = load_config(args.config, args.overrides)
    assert c.training.trainable_blocks == 2
    assert "trainable_blocks: 2" in dump_config(c)
    save_config(c, tmp_path / "run.yaml")
    assert load_config(tmp_path / "run.yaml") == c
    assert load_config(tmp_path / "run.yaml", ["training.trainable_blocks=null"]).training.trainable_blocks is None


def test_base_chain_and_loops(tmp_path):
    (tmp_path / "a.yaml").write_text("base: paper.yaml\nmixing: {p_musical: 0.7}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\ntraining: {epochs: 3}\n")
    c = load_config(tmp_path / "b.yaml")
    assert (c.mixing.p_musical, c.training.epochs, c.name) == (0.7, 3, "b")
    (tmp_path / "x.yaml").write_text("base: y.yaml\n")
    (tmp_path / "y.yaml").write_text("base: x.yaml\n")
    with pytest.raises(ValueError, match="loops"):
        load_config(tmp_path / "x.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_apply_overrides_does_not_mutate_input():
    base = {"mixing": {"p_musical": 0.4}}
    out = apply_overrides(base, ["mixing.p_musical=0.1"])
    assert base["mixing"]["p_musical"] == 0.4 and out["mixing"]["p_musical"] == 0.1


def test_exponent_notation_without_a_dot_is_a_number():
    # PyYAML reads 1e-4 as a string (YAML 1.1); learning rates are written that way.
    c = load_config("paper", ["optimizer.head_learning_rate=1e-4", "optimizer.backbone_learning_rate=5E-6"])
    assert (c.optimizer.head_learning_rate, c.optimizer.backbone_learning_rate) == (1e-4, 5e-6)
    with pytest.raises(ValueError, match="optimizer.head_learning_rate"):
        load_config("paper", ["optimizer.head_learning_rate=fast"])
