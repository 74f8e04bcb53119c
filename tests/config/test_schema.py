"""Config dataclasses: validation naming the key, and the numbers of the shipped experiment files."""

from __future__ import annotations

from pathlib import Path

import pytest

from keras_inst.config.io import load_config, to_dict

REPO = Path(__file__).resolve().parents[2]


def test_paper_config_carries_every_number_of_the_paper():
    c = load_config("paper")
    assert (c.audio.sample_rate, c.audio.chunk_seconds, c.audio.chunk_samples) == (16000, 4.0, 64000)
    assert (c.features.n_fft, c.features.hop_length, c.features.n_mels) == (512, 256, 128)
    assert c.model.channels == (128, 128, 256, 256, 256, 256, 512)
    assert c.mixing.p_musical == 0.4
    assert c.optimizer.head_learning_rate == 0.01
    assert c.optimizer.backbone_learning_rate == 0.0001
    assert c.optimizer.lr_step_epochs == 20
    assert c.data.split == (0.65, 0.175, 0.175)
    assert c.data.datasets == ("medleydb", "mixing_secrets", "slakh")
    assert c.mixing.dataset_weights is None  # equal: 1/3 each


def test_paper_yaml_documents_every_open_value():
    # Every leaf value in paper.yaml carries a [paper ...] or [open] tag on its line or its section.
    text = (REPO / "configs" / "paper.yaml").read_text()
    assert text.count("[open]") >= 15
    assert text.count("[paper") >= 15


def test_table1_configs_differ_only_in_transfer_mode():
    s, f, t = (load_config(f"table1_{m}") for m in ("scratch", "frozen", "finetune"))
    assert (s.training.transfer, f.training.transfer, t.training.transfer) == ("scratch", "frozen", "finetune")
    assert s.training.pretrained is None and f.training.pretrained == t.training.pretrained == "short_chunk_cnn"
    assert s.optimizer.backbone_learning_rate == s.optimizer.head_learning_rate == 0.01
    assert to_dict(f.mixing) == to_dict(t.mixing) == to_dict(s.mixing)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("mixing.p_musical=1.5", "mixing.p_musical"),
        ("mixing.nonsense=1", "mixing.nonsense"),
        ("nonsense.key=1", "nonsense"),
        ("model.channels=[1,two]", "model.channels[1]"),
        ("training.transfer=partial", "training.transfer"),
        ("training.epochs=2.5", "training.epochs"),
        ("features.mel_scale=bark", "features.mel_scale"),
        ("effects.gain_db=[3,-3]", "effects.gain_db"),
        ("data.split=[0.5,0.5,0.5]", "data.split"),
        ("data.datasets=[medleydb,foo]", "data.datasets"),
        ("mixing.dataset_weights=[1,1]", "mixing.dataset_weights"),
        ("features.f_max=9000", "features.f_max"),
        ("training.center=true", "training.center"),
        ("mixing.min_sources=3", None),  # valid
        ("mixing.max_sources=1", "mixing.max_sources"),
        ("data.render_speech=1.5", "data.render_speech"),
        ("data.render_speech=0.3", None),  # valid
        ("training.use_amp", "section.key=value"),
    ],
)
def test_bad_values_name_the_key(override, needle):
    if needle is None:
        load_config("paper", [override])
        return
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_config("paper", [override])


def test_frozen_scratch_needs_no_pretrained_but_frozen_does():
    with pytest.raises(ValueError, match="training.pretrained"):
        load_config("paper", ["training.transfer=frozen", "training.pretrained=null"])
    assert load_config("paper", ["training.transfer=scratch", "training.pretrained=null"]).training.pretrained is None


@pytest.mark.parametrize("sets", [
    ["training.trainable_blocks=-1"],
    ["training.trainable_blocks=0"],  # that is transfer=frozen
    ["training.trainable_blocks=2.5"],
    ["training.trainable_blocks=true"],
    ["training.trainable_blocks=2", "training.transfer=frozen"],
    ["training.trainable_blocks=2", "training.transfer=scratch", "training.pretrained=null"],
])
def test_bad_trainable_blocks_name_the_key(sets):
    with pytest.raises(ValueError, match=r"training\.trainable_blocks"):
        load_config("paper", sets)


def test_trainable_blocks_is_off_in_paper_and_3_in_the_main_job():
    assert load_config("paper").training.trainable_blocks is None  # the paper fine-tunes it all
    assert load_config("demo").training.trainable_blocks == 3  # the main job: blocks 1-2 frozen
    assert load_config("release").training.trainable_blocks == 3
    assert load_config("paper", ["training.trainable_blocks=3"]).training.trainable_blocks == 3


def test_slakh_problem_stems_reach_only_the_slakh_reader():
    cfg = load_config("paper", ["data.slakh_problem_stems=/d/slakh-utils/splits/problem_stems.json"])
    assert cfg.data.problem_stems_for("slakh") == "/d/slakh-utils/splits/problem_stems.json"
    assert cfg.data.problem_stems_for("medleydb") is None
    assert load_config("paper").data.problem_stems_for("slakh") is None
