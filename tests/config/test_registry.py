"""keras_inst.config.registry: one name set each for backbones, pre-trained weights, datasets,
which config validation queries."""

from __future__ import annotations

import pytest

from keras_inst.config.io import from_dict, load_config
from keras_inst.config.registry import (
    BACKBONES,
    DATASETS,
    PRETRAINED,
    Registry,
    register_dataset,
    register_pretrained,
)
from keras_inst.config.schema import DataConfig, ModelConfig, TrainingConfig


def test_the_shipped_names():
    assert BACKBONES.names() == ("short_chunk_cnn", "short_chunk_res", "musicnn_vgg", "musicnn")
    assert PRETRAINED.names() == ("short_chunk_cnn", "musicnn_msd_vgg", "musicnn_mtt_vgg", "musicnn_mtt_musicnn",
                                  "musicnn_msd_musicnn", "keras_inst_release")
    assert DATASETS.names() == ("medleydb", "mixing_secrets", "slakh", "mtg_jamendo", "rendered")


@pytest.mark.parametrize("make,key,known", [
    (lambda: ModelConfig(architecture="vgg19"), "model.architecture",
     "unknown backbone 'vgg19'; known: short_chunk_cnn, short_chunk_res, musicnn_vgg, musicnn"),
    (lambda: TrainingConfig(pretrained="vgg19"), "training.pretrained",
     "unknown pre-trained weights 'vgg19'; known: short_chunk_cnn, musicnn_msd_vgg, musicnn_mtt_vgg, "
     "musicnn_mtt_musicnn, musicnn_msd_musicnn, keras_inst_release"),
    (lambda: DataConfig(datasets=("vgg19",)), "data.datasets",
     "unknown dataset 'vgg19'; known: medleydb, mixing_secrets, slakh, mtg_jamendo, rendered"),
    (lambda: DataConfig(roots={"vgg19": "/x"}), "data.roots",
     "unknown dataset 'vgg19'; known: medleydb, mixing_secrets, slakh, mtg_jamendo, rendered"),
])
def test_unknown_names_list_the_known_ones(make, key, known):
    with pytest.raises(ValueError) as e:
        make()
    assert str(e.value) == f"config key '{key}': {known}"


def test_registered_names_become_config_values_without_importing_them():
    # The entries name modules that do not exist: validating a name never imports its entry.
    register_dataset("my_stems", "keras_inst.no_such_reader")
    register_pretrained("my_weights", "keras_inst.no_such_module:WEIGHTS")
    try:
        cfg = load_config("paper", ["data.datasets=[slakh,my_stems]", "data.roots.my_stems=/x",
                                    "training.pretrained=my_weights"])
        assert cfg.data.datasets == ("slakh", "my_stems")
        assert cfg.training.pretrained == "my_weights"
        with pytest.raises(ValueError, match="config key 'data.datasets': dataset 'my_stems' is "
                                             "provided by 'keras_inst.no_such_reader', which is not"):
            DATASETS.get("my_stems")
    finally:
        DATASETS.unregister("my_stems")
        PRETRAINED.unregister("my_weights")
    with pytest.raises(ValueError, match="unknown dataset 'my_stems'"):
        load_config("paper", ["data.datasets=[slakh,my_stems]"])


def test_lazy_entries_resolve_once_to_the_named_object():
    reg = Registry("thing", "section.thing", {"dumps": "json:dumps", "module": "json"})
    import json

    assert reg.get("dumps") is json.dumps and reg.get("module") is json
    reg.register("dumps", len)
    assert reg.get("dumps") is len and list(reg) == ["dumps", "module"]
    with pytest.raises(ValueError, match="thing name must be a non-empty string"):
        reg.register("", len)
    with pytest.raises(ValueError, match="config key 'section.thing': unknown thing 'x'"):
        reg.unregister("x")


def test_dataset_cli_choices_follow_the_registry():
    from keras_inst.data.cli import build_parser

    register_dataset("my_stems", "keras_inst.data.datasets.slakh")
    try:
        args = build_parser().parse_args(["inspect", "--dataset", "my_stems", "--root", "x"])
        assert args.dataset == "my_stems"
    finally:
        DATASETS.unregister("my_stems")


def test_removed_keys_are_refused_by_name():
    """training.shuffle_buffer was validated but never read; old configs get a clear error."""
    with pytest.raises(ValueError, match="unknown config key 'training.shuffle_buffer' in "
                                         "'training'; known keys: "):
        from_dict({"training": {"shuffle_buffer": 256}})
    with pytest.raises(ValueError, match="unknown config key 'training.shuffle_buffer'"):
        load_config("paper", ["training.shuffle_buffer=256"])
