"""RunDir on its own, with a tiny dense model: identity, state, resume after a kill, finalize,
stale temporary files, and a non-chief worker that writes nothing into the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keras_inst.config.io import dump_config, load_config
from keras_inst.training.run_dir import (
    BEST_CKPT,
    LAST_CKPT,
    RunDir,
    RunState,
    TrainingError,
    differing_keys,
)


def _cfg(*sets: str):
    return load_config("demo", ["training.epochs=3", "training.steps_per_epoch=2", *sets])


def _model(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def _data():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype("float32")
    y = (rng.random((16, 3)) > 0.5).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class _Kill(BaseException):
    """Stands in for SIGKILL after an epoch: nothing after it runs."""


def test_identity_refusal_names_the_differing_keys(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    a, b = _cfg(), _cfg("mixing.p_musical=0.9", "training.seed=7")
    assert run.prepare(a) == "new"
    assert (run.path / "config.yaml").read_text() == dump_config(a)
    assert run.prepare(a) == "resume"
    with pytest.raises(TrainingError) as e:
        run.prepare(b)
    assert "different config (differs in mixing.p_musical, training.seed)" in str(e.value)
    assert "--overwrite" in str(e.value)
    assert (run.path / "config.yaml").read_text() == dump_config(a)  # untouched
    with pytest.raises(TrainingError, match="tuner directory .* choose another --dir$"):
        run.prepare(b, noun="tuner directory", hint="choose another --dir")
    (run.path / "old.txt").write_text("x")
    assert run.prepare(b, overwrite=True) == "new"
    assert (run.path / "config.yaml").read_text() == dump_config(b)
    assert not (run.path / "old.txt").exists()
    assert differing_keys({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 0}) == ["a.c", "d"]


def test_a_run_made_before_new_default_keys_still_resumes(tmp_path: Path) -> None:
    """A config.yaml that lacks keys added later (at their defaults) is the same run; one that
    sets a non-default value of such a key, or holds a removed key, is not."""
    import yaml

    run = RunDir(tmp_path / "run")
    a = _cfg()
    assert run.prepare(a) == "new"
    old = yaml.safe_load((run.path / "config.yaml").read_text())
    del old["training"]["strategy"], old["data"]["render_sources"]  # keys a newer keras_inst added
    (run.path / "config.yaml").write_text(yaml.safe_dump(old))
    assert run.prepare(a) == "resume"
    assert (run.path / "config.yaml").read_text() == dump_config(a)  # completed with the defaults
    with pytest.raises(TrainingError, match="differs in training.strategy"):
        run.prepare(_cfg("training.strategy=mirrored"))
    old["training"]["shuffle_buffer"] = 256  # a key that no longer exists
    (run.path / "config.yaml").write_text(yaml.safe_dump(old))
    with pytest.raises(TrainingError, match="different config"):
        run.prepare(a)


def test_bound_inputs_are_part_of_the_identity(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.bind("inputs.json", {"tsv": "a.tsv", "tags": ["x"]})
    run.bind("inputs.json", {"tsv": "a.tsv", "tags": ["x"]})
    with pytest.raises(TrainingError, match=r"other tags \(inputs.json\)"):
        run.bind("inputs.json", {"tsv": "a.tsv", "tags": ["x", "y"]})


def test_state_round_trip_and_best_moves_on_a_strict_gain(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.read_state() == RunState(epochs_done=0, best_score=None, best_epoch=None, complete=False)
    s = RunState().after_epoch(1, 0.6).after_epoch(2, 0.8).after_epoch(3, 0.8).after_epoch(4, 0.7)
    assert s == RunState(epochs_done=4, best_score=0.8, best_epoch=2, complete=False)
    run.write_state(s)
    assert json.loads((tmp_path / "state.json").read_text()) == {
        "epochs_done": 4, "best_score": 0.8, "best_epoch": 2, "complete": False
    }
    assert run.read_state() == s
    # state.json of the previous layout (no best yet) still reads
    (tmp_path / "state.json").write_text('{"epochs_done": 1, "complete": false}')
    assert run.read_state() == RunState(epochs_done=1)


def test_resume_after_a_kill_and_finalize(tmp_path: Path, capsys) -> None:
    import keras

    class KillAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise _Kill

    cfg = _cfg()
    run = RunDir(tmp_path / "run")
    run.prepare(cfg)
    assert run.resume_epoch() == 0
    model = run.load_or_build(0, _model)
    with pytest.raises(_Kill):
        run.fit(model, _data(), None, cfg.training, initial_epoch=0, callbacks=[KillAfterSecondEpoch()], verbose=0)
    state = run.read_state()
    assert state.epochs_done == 2 and not state.complete and state.best_epoch in (1, 2)
    assert [r.split(",")[0] for r in (run.path / "history.csv").read_text().splitlines()[1:]] == ["0", "1"]

    # a fresh process: same directory, resumes after epoch 2 from the last checkpoint
    again = RunDir(tmp_path / "run")
    assert again.prepare(cfg) == "resume" and again.resume_epoch() == 2
    resumed = again.load_or_build(2, lambda: pytest.fail("must not build a new model"))
    assert f"Resuming {again.path} after epoch 2" in capsys.readouterr().out
    for a, b in zip(resumed.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(resumed.optimizer.iterations.numpy()) == 4  # optimizer state comes back too
    again.fit(resumed, _data(), None, cfg.training, initial_epoch=2, verbose=0)
    assert again.read_state().epochs_done == 3

    # finalize: the BEST checkpoint becomes model.keras; outputs run before complete=true
    best = _model(seed=1)
    best.fit(_data(), steps_per_epoch=1, verbose=0, shuffle=False)  # builds the optimizer state it is saved with
    again.save_model(BEST_CKPT, best)
    seen: list[bool] = []
    out = again.finalize(resumed, outputs=lambda final: seen.append(again.read_state().complete) or final)
    assert seen == [False] and again.read_state().complete and again.prepare(cfg) == "complete"
    saved = keras.saving.load_model(again.path / "model.keras", compile=False)
    for a, b, c in zip(saved.get_weights(), best.get_weights(), out.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)

    # without a last checkpoint there is nothing to resume from, whatever state.json says
    (again.path / LAST_CKPT).unlink()
    assert again.resume_epoch() == 0


def test_stale_temporary_files_are_removed_on_prepare(tmp_path: Path) -> None:
    cfg = _cfg()
    run = RunDir(tmp_path)
    run.prepare(cfg)
    (tmp_path / "checkpoints").mkdir()
    stale = [tmp_path / "checkpoints" / ".last.keras.tmp-99999.keras", tmp_path / ".state.json.tmp-1.json"]
    for p in stale:
        p.write_text("half written")
    (tmp_path / "checkpoints" / "last.keras").write_text("kept")
    assert run.prepare(cfg) == "resume"
    assert not any(p.exists() for p in stale)
    assert sorted(_tree(tmp_path)) == ["checkpoints/last.keras", "config.yaml", "data_locations.json"]


def test_a_non_chief_worker_writes_nothing_into_the_run_directory(tmp_path: Path) -> None:
    cfg = _cfg("training.epochs=1")
    chief = RunDir(tmp_path / "run")
    chief.prepare(cfg)
    chief.write_state(RunState())
    before = _tree(chief.path)
    with RunDir(tmp_path / "run", is_chief=False) as worker:
        scratch = worker.write_dir
        assert tmp_path not in scratch.parents and scratch.is_dir()
        assert worker.prepare(cfg) == "resume"
        model = worker.load_or_build(worker.resume_epoch(), _model)
        worker.fit(model, _data(), None, cfg.training, initial_epoch=0, verbose=0)
        worker.finalize(model, outputs=lambda final: worker.write_json("report.json", {"a": 1}))
        assert {"state.json", "model.keras", "report.json", LAST_CKPT} <= set(_tree(scratch))
    assert _tree(chief.path) == before
    assert not scratch.exists()  # discarded on close
    # on a fresh path a worker does not even create the directory
    with RunDir(tmp_path / "fresh", is_chief=False) as worker:
        assert worker.prepare(cfg) == "new"
        worker.write_state(RunState(epochs_done=1))
    assert not (tmp_path / "fresh").exists()


def test_nan_loss_stops_the_run_before_its_epoch_is_recorded(tmp_path: Path) -> None:
    import keras

    cfg = _cfg()
    run = RunDir(tmp_path)
    run.prepare(cfg)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])  # linear: can overflow
    model.compile(optimizer=keras.optimizers.SGD(1e30), loss="mse")
    with pytest.raises(TrainingError, match=r"loss became \S+ at batch \d+; stopping. Lower the learning rate"):
        run.fit(model, _data(), None, cfg.training, initial_epoch=0, verbose=0)
    assert run.read_state() == RunState() and not (tmp_path / LAST_CKPT).exists()


def test_a_run_that_never_started_is_reclaimed_by_the_corrected_config(tmp_path: Path) -> None:
    """A start that failed (e.g. on a data root that does not exist) has written config.yaml;
    the corrected command re-claims the directory instead of refusing it as another config's,
    but once the run started (state.json), another config is refused again."""
    bad, good = _cfg("data.roots.rendered=/no/such/folder"), _cfg("data.roots.rendered=/data/x")
    run = RunDir(tmp_path / "run")
    assert run.prepare(bad, reclaim=True) == "new"
    (tmp_path / "run" / "split.json").write_text("{}")  # left by the failed start
    assert not run.started
    with pytest.raises(TrainingError, match="different config"):
        run.prepare(good)  # without reclaim (the tuner's directories): refused as before
    assert run.prepare(good, reclaim=True) == "new"
    assert (tmp_path / "run" / "config.yaml").read_text() == dump_config(good)
    assert not (tmp_path / "run" / "split.json").exists()
    run.mark_started()
    assert run.started and run.read_state() == RunState()
    assert run.prepare(good, reclaim=True) == "resume"
    with pytest.raises(TrainingError, match=r"different config \(differs in data.roots.rendered\)"):
        run.prepare(bad, reclaim=True)
