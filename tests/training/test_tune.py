"""keras-tuner search over p_musical on a tiny rendered corpus: table, plot, the trial's p_musical
really reaching its training stream, and resumption of an interrupted search."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from keras_inst.training.tune import best_epoch_metrics, main, objective_direction, trial_config

TINY = [
    "data.datasets=[rendered]",
    "data.render_songs=0",
    "tuner.p_musical_values=[0.0, 1.0]",
    "tuner.seeds=1",
    "tuner.epochs=1",
    "training.steps_per_epoch=2",
    "training.batch_size=4",
    "training.transfer=scratch",
    "training.pretrained=null",
    "model.width_multiplier=0.0625",
    "model.head_units=16",
    "mixing.max_sources=3",
    "mixing.eval_chunks_per_song=2",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """6 rendered 8-second songs (4/1/1 split) and their audio cache, built once."""
    from keras_inst.corpus.render import render_corpus
    from keras_inst.data.cache.build import build_cache
    from keras_inst.data.datasets import read_dataset

    base = tmp_path_factory.mktemp("tune")
    root, cache = base / "rendered", base / "cache"
    render_corpus(root, songs=6, seed=0, max_seconds=8.0, workers=1, progress=False)
    songs, _ = read_dataset("rendered", root)
    build_cache(songs, cache, sample_rate=16000, workers=1, progress=False, envelope_hop=256)
    return root, cache


def _args(corpus: tuple[Path, Path], tune_dir: Path, extra: list[str] = ()) -> list[str]:
    root, cache = corpus
    sets = [*TINY, f"data.roots.rendered={root}", f"data.cache_dir={cache}", *extra]
    return ["--config", "fig2_p_musical", "--dir", str(tune_dir)] + [
        a for s in sets for a in ("--set", s)
    ]


class _Interrupt(BaseException):
    """Like Ctrl-C: not an Exception, so keras-tuner does not catch it."""


def test_search_table_p_musical_and_resume(corpus, tmp_path: Path, monkeypatch, capsys) -> None:
    from keras_inst.data import pipeline
    real = pipeline.build_data
    calls: list[dict] = []
    interrupt_at = [2]  # the second build_data call: the start of the second trial

    def spy(cfg, **kwargs):
        calls.append({"p_musical": cfg.mixing.p_musical, "seed": cfg.training.seed})
        if len(calls) == interrupt_at[0]:
            raise _Interrupt
        data = real(cfg, **kwargs)
        # What the trial's training stream is made of, drawn by the stream's own sampler.
        calls[-1]["musical"] = [data.sampler.draw(i).musical for i in range(64)]
        calls[-1]["sampler_p"] = data.sampler.mixing.p_musical
        return data

    monkeypatch.setattr(pipeline, "build_data", spy)
    tune_dir = tmp_path / "tune"
    with pytest.raises(_Interrupt):
        main(_args(corpus, tune_dir))
    assert [c["p_musical"] for c in calls] == [0.0, 1.0]
    assert calls[0]["sampler_p"] == 0.0 and not any(calls[0]["musical"])
    finished = list((tune_dir / "search").glob("trial_*/executions.json"))
    assert len(finished) == 1 and json.loads(finished[0].read_text())["p_musical"] == 0.0

    # The second invocation runs only the interrupted value.
    interrupt_at[0] = 0
    calls.clear()
    assert main(_args(corpus, tune_dir)) == 0
    assert [c["p_musical"] for c in calls] == [1.0]
    assert calls[0]["sampler_p"] == 1.0 and all(calls[0]["musical"])
    results = json.loads((tune_dir / "results.json").read_text())
    rows = {r["p_musical"]: r for r in results["rows"]}
    assert sorted(rows) == [0.0, 1.0] and all(
        r["complete"] and r["seeds"] == 1 for r in rows.values()
    )
    for r in rows.values():
        assert 0.0 <= r["mean_val_roc_auc"] <= 1.0 and r["per_seed_val_roc_auc"] == [
            r["mean_val_roc_auc"]
        ]
        assert r["mean_val_loss"] > 0 and r["best_epochs"] == [1]
    best = max(rows.values(), key=lambda r: r["mean_val_roc_auc"])["p_musical"]
    assert results["best_p_musical"] == best
    table = (tune_dir / "results.md").read_text()
    assert "| 0 | 1 |" in table and "| 1 | 1 |" in table and f"**{best}**" in table
    assert (tune_dir / "fig2_p_musical.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tune_dir / "split.json").is_file()  # one split shared by every trial

    # A finished search trains nothing again.
    calls.clear()
    capsys.readouterr()
    assert main(_args(corpus, tune_dir)) == 0
    assert calls == []
    assert json.loads((tune_dir / "results.json").read_text()) == results

    # Another config in the same directory is refused.
    assert main(_args(corpus, tune_dir, ["tuner.epochs=2"])) == 2
    assert "different config" in capsys.readouterr().err


def test_best_epoch_metrics_and_trial_config() -> None:
    from keras_inst.config.io import load_config

    hist = {"val_roc_auc": [0.6, 0.8, 0.8, math.nan], "val_loss": [0.5, 0.4, 0.3, math.nan]}
    assert best_epoch_metrics(hist, "val_roc_auc") == (1, {"val_roc_auc": 0.8, "val_loss": 0.4})
    assert best_epoch_metrics(hist, "val_loss") == (2, {"val_roc_auc": 0.8, "val_loss": 0.3})
    assert objective_direction("val_loss") == "min" and objective_direction("val_pr_auc") == "max"
    with pytest.raises(ValueError, match="tuner.objective"):
        best_epoch_metrics(hist, "val_f1")
    cfg = load_config("fig2_p_musical", ["training.seed=5", "tuner.epochs=7"])
    run = trial_config(cfg, 0.6, 3)
    assert (run.mixing.p_musical, run.training.seed, run.training.epochs) == (0.6, 8, 7)
    assert run.mixing.p_single_source == cfg.mixing.p_single_source and np.isclose(
        cfg.mixing.p_musical, 0.4
    )


@pytest.mark.slow
def test_interrupted_value_keeps_its_finished_seeds(corpus, tmp_path: Path, monkeypatch) -> None:
    from keras_inst.data import pipeline
    real = pipeline.build_data
    calls: list[tuple[float, int]] = []
    interrupt_at = [2]  # the second seed of the first value

    def spy(cfg, **kwargs):
        calls.append((cfg.mixing.p_musical, cfg.training.seed))
        if len(calls) == interrupt_at[0]:
            raise _Interrupt
        return real(cfg, **kwargs)

    monkeypatch.setattr(pipeline, "build_data", spy)
    args = _args(corpus, tmp_path / "tune", ["tuner.seeds=2", "tuner.p_musical_values=[0.4]"])
    with pytest.raises(_Interrupt):
        main(args)
    interrupt_at[0] = 0
    calls.clear()
    assert main(args) == 0
    assert calls == [(0.4, 1)]  # seed 0 of the interrupted value is not trained again
    rows = json.loads((tmp_path / "tune" / "results.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["seeds"] == 2 and len(rows[0]["per_seed_val_roc_auc"]) == 2
    mean = float(np.mean(rows[0]["per_seed_val_roc_auc"]))
    assert rows[0]["mean_val_roc_auc"] == pytest.approx(mean)
