"""keras-tuner search over p_musical on a tiny rendered corpus: table, plot, the trial's p_musical
really reaching its training stream, and resumption of an interrupted search."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tiny import rendered_with_cache

from keras_inst.training.tune import (
    _keep_best_weights,
    best_epoch_metrics,
    collect_results,
    fig2_series,
    main,
    objective_direction,
    plot_figure,
    plot_results,
    results_markdown,
    score_test_split,
    trial_config,
)

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
    return rendered_with_cache(tmp_path_factory.mktemp("tune"), songs=6, seconds=8.0)


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
        # Each seed is scored on the test split too (Fig. 2's panels). The one test song's two
        # mixes may leave every class undefined for the AUCs (None), never the loss.
        assert r["mean_test_loss"] > 0 and len(r["per_seed_test_loss"]) == 1
        assert r["min_test_loss"] == r["max_test_loss"] == r["mean_test_loss"]
        assert r["mean_test_roc_auc"] is None or 0.0 <= r["mean_test_roc_auc"] <= 1.0
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
    # --report-only trains nothing either and writes the same results; --plot writes a PNG.
    plot = tmp_path / "fig2.png"
    assert main([*_args(corpus, tune_dir), "--report-only", "--plot", str(plot)]) == 0
    assert calls == [] and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tune_dir / "results.json").read_text()) == results
    assert main([*_args(corpus, tmp_path / "none"), "--report-only"]) == 2

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


def _write_trial(tune_dir: Path, name: str, p_musical: float, seeds: list[tuple]) -> None:
    """An executions.json as PMusicalSearch writes it; seeds: (val ROC-AUC, test metrics|None)."""
    names = ("test_roc_auc", "test_pr_auc", "test_loss")
    record = {"p_musical": p_musical, "seeds": [
        {"seed": i, "best_epoch": 1,
         "metrics": {"val_roc_auc": v, "val_pr_auc": v / 2, "val_loss": 1 - v},
         **({"test": dict(zip(names, t, strict=True))} if t else {})}
        for i, (v, t) in enumerate(seeds)]}
    (tune_dir / "search" / name).mkdir(parents=True)
    (tune_dir / "search" / name / "executions.json").write_text(json.dumps(record))


def test_table_series_and_plot_agree(tmp_path: Path) -> None:
    from keras_inst.config.io import load_config

    cfg = load_config("fig2_p_musical", ["tuner.seeds=3"])
    _write_trial(tmp_path, "trial_1", 0.4, [(0.8, (0.9, 0.5, 0.2)), (0.7, (0.7, 0.3, 0.4)),
                                            (0.9, (0.8, None, 0.3))])
    _write_trial(tmp_path, "trial_0", 0.0, [(0.6, (0.6, 0.2, 0.5)), (0.5, None)])
    results = collect_results(cfg, tmp_path)
    r0, r4 = results["rows"]  # sorted by p_musical
    assert (r0["p_musical"], r0["complete"], r4["complete"]) == (0.0, False, True)
    assert r4["per_seed_test_pr_auc"] == [0.5, 0.3, None]
    assert r4["mean_test_roc_auc"] == pytest.approx(0.8) and r4["std_test_roc_auc"] == pytest.approx(
        np.std([0.9, 0.7, 0.8]))
    assert (r4["min_test_loss"], r4["max_test_loss"]) == (0.2, 0.4)
    assert r4["mean_test_pr_auc"] == pytest.approx(0.4)  # the seed without a value is left out
    assert r0["per_seed_test_roc_auc"] == [0.6, None] and r0["mean_test_roc_auc"] == 0.6
    assert results["best_p_musical"] == 0.4  # only complete values compete
    table = results_markdown(results)
    assert "| 0.4 | 3 | 0.8000 [0.7000, 0.9000] | 0.4000 [0.3000, 0.5000] | 0.3000 [0.2000, " in table

    series = fig2_series(results)
    assert series["roc_auc"]["x"] == [0.0, 0.4]
    assert series["loss"]["mean"] == pytest.approx([0.5, 0.3])
    assert (series["loss"]["min"], series["loss"]["max"]) == ([0.5, 0.2], [0.5, 0.4])
    fig = plot_figure(results)
    assert [ax.get_title() for ax in fig.axes] == ["test ROC-AUC", "test PR-AUC", "test loss"]
    for ax, panel in zip(fig.axes, ("roc_auc", "pr_auc", "loss"), strict=True):
        s = series[panel]
        np.testing.assert_allclose(ax.lines[0].get_xdata(), s["x"])
        np.testing.assert_allclose(ax.lines[0].get_ydata(), s["mean"])
        band = ax.collections[0].get_paths()[0].vertices  # fill_between: the band's outline
        for x, lo, hi in zip(s["x"], s["min"], s["max"], strict=True):
            ys = band[np.isclose(band[:, 0], x), 1]
            assert (ys.min(), ys.max()) == pytest.approx((lo, hi))
    assert fig2_series(results, "val")["roc_auc"]["mean"] == pytest.approx([0.55, 0.8])
    with pytest.raises(ValueError, match="split"):
        fig2_series(results, "train")
    assert plot_results(results, tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_best_epoch_weights_and_test_split_scores() -> None:
    import keras

    from keras_inst.training.metrics import binary_cross_entropy

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    cb = _keep_best_weights("val_roc_auc")
    cb.set_model(model)
    for epoch, (value, w) in enumerate([(0.6, 1.0), (0.8, 2.0), (0.8, 3.0), (math.nan, 4.0)]):
        model.set_weights([np.full((2, 1), w), np.zeros(1)])
        cb.on_epoch_end(epoch, {"val_roc_auc": value})
    assert cb.best_weights[0][0, 0] == 2.0  # the epoch best_epoch_metrics picks (index 1)

    y = np.zeros((4, 15), np.float32)
    y[[0, 1], 0] = 1.0
    y[[2, 3], 1] = 1.0
    p = np.where(y > 0, 0.9, 0.1).astype(np.float32)
    p[3, 0] = 0.95  # one false positive ranked above both positives of class 0

    class Fixed:
        def predict_on_batch(self, x):
            return p[np.asarray(x)[:, 0].astype(int)]

    ds = [(np.arange(2)[:, None], y[:2]), (np.arange(2, 4)[:, None], y[2:])]
    scores = score_test_split(Fixed(), ds)
    # class 0: the negative at 0.95 beats both positives, the other negative is below them ->
    # ROC-AUC 1/2, average precision 2/3; class 1: perfect. The 13 classes without a positive
    # are left out of the macro means.
    assert scores["test_roc_auc"] == pytest.approx((0.5 + 1.0) / 2)
    assert scores["test_pr_auc"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert scores["test_loss"] == pytest.approx(binary_cross_entropy(y, p))
