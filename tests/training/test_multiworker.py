"""MultiWorkerMirroredStrategy on loopback: two CPU worker processes on 127.0.0.1 (``TF_CONFIG``,
free-picked ports) train a tiny run; only the chief writes the run directory; one synchronous
2-worker step equals one single-process step on the same global batch; a killed cluster resumes.

Every subprocess is bounded by a timeout and killed (its whole process group) on the way out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tiny import rendered_with_cache, tiny_overrides

TINY = tiny_overrides(steps=2, epochs=2, eval_chunks=2)
TIMEOUT = 240  # seconds for any one cluster run (measured: ~40 s on 2 shared cores)


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports of 127.0.0.1 (bound to port 0, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    """TF_CONFIG of worker ``index`` of a chief-less cluster (worker 0 is the chief)."""
    workers = [f"127.0.0.1:{p}" for p in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def worker_env(ports: list[int], index: int, tmp: Path) -> dict[str, str]:
    scratch = tmp / f"tmp{index}"  # the worker's TMPDIR: where a non-chief's RunDir writes
    scratch.mkdir(parents=True, exist_ok=True)
    return dict(os.environ, TF_CONFIG=tf_config(ports, index), TMPDIR=str(scratch),
                TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")


class Cluster:
    """Worker processes started together; each one's output goes to ``log<i>.txt``."""

    def __init__(self, cmds: list[list[str]], envs: list[dict], logs: list[Path]) -> None:
        self.logs = logs
        self.procs = [
            subprocess.Popen(c, env=e, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
            for c, e, log in zip(cmds, envs, logs, strict=True)
        ]

    def wait(self, timeout: float) -> list[int]:
        deadline = time.time() + timeout
        try:
            return [p.wait(timeout=max(1.0, deadline - time.time())) for p in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"cluster did not finish in {timeout} s; logs:\n{self.tails()}")

    def kill(self, index: int | None = None) -> None:
        for i, p in enumerate(self.procs):
            if (index is None or i == index) and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def output(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")

    def tails(self) -> str:
        return "\n".join(f"--- worker {i}:\n{self.output(i)[-3000:]}" for i in range(len(self.logs)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """8 rendered 6-second songs and their audio cache, built once (workers only read it)."""
    return rendered_with_cache(tmp_path_factory.mktemp("multiworker"), songs=8, seconds=6.0)


def train_cmd(corpus: tuple[Path, Path], run: Path, *extra: str) -> list[str]:
    root, cache = corpus
    cmd = [sys.executable, "-m", "keras_inst.train", "--config", "demo", "--run-dir", str(run),
           "--strategy", "multi_worker"]
    for s in [*TINY, f"data.roots.rendered={root}", f"data.cache_dir={cache}", *extra]:
        cmd += ["--set", s]
    return cmd


def start_cluster(corpus, run: Path, tmp: Path, *extra: str, tag: str = "") -> Cluster:
    ports = free_ports(2)
    cmd = train_cmd(corpus, run, *extra)
    return Cluster([cmd, cmd], [worker_env(ports, i, tmp) for i in range(2)],
                   [tmp / f"log{i}{tag}.txt" for i in range(2)])


def epochs_in_history(run: Path) -> list[str]:
    return [r.split(",")[0] for r in (run / "history.csv").read_text().strip().splitlines()[1:]]


@pytest.mark.slow  # 35-53 s in CI (see pyproject's markers); run with -m slow
@pytest.mark.loopback  # 24 s on 2 quiet cores
def test_two_workers_train_and_only_the_chief_writes_the_run(corpus, tmp_path):
    run = tmp_path / "run"
    cluster = start_cluster(corpus, run, tmp_path)
    codes = cluster.wait(TIMEOUT)
    assert codes == [0, 0], cluster.tails()
    assert "Worker 1 of 2 finished" in cluster.output(1)
    assert "Test split: ROC-AUC" in cluster.output(0)
    for name in ("config.yaml", "split.json", "model.keras", "report.json", "checkpoints/last.keras",
                 "checkpoints/best.keras"):
        assert (run / name).is_file(), name
    # one CSV row per epoch: the worker's CSVLogger did not append to the chief's history
    assert epochs_in_history(run) == ["0", "1"]
    state = json.loads((run / "state.json").read_text())
    assert state["complete"] and state["epochs_done"] == 2
    # the worker wrote into a scratch folder of its own TMPDIR, removed when it finished
    assert list((tmp_path / "tmp1").iterdir()) == []


@pytest.mark.slow  # 32 s in CI; the one-step equality test below stays in the default suite
def test_worker_streams_split_every_global_batch_of_the_single_process_stream(corpus):
    """Example indices, labels and mixes: worker 0's and worker 1's step-s batches, one after
    the other, are the single-process step-s batch (effects and all), so no mix is drawn twice."""
    from keras_inst.config.io import load_config
    from keras_inst.data.pipeline import build_data, training_dataset
    from keras_inst.training.distribute import worker_stream

    root, cache = corpus
    cfg = load_config("demo", [*TINY, f"data.roots.rendered={root}", f"data.cache_dir={cache}"])
    data = build_data(cfg, progress=False)
    b, start, steps = cfg.training.batch_size, 3 * cfg.training.batch_size, 2  # from a resumed step

    def batches(**kw) -> list:
        ds = training_dataset(cfg, data.sampler, with_recipe=True, **kw).take(steps)
        return [(x.numpy(), y.numpy(), r["index"].numpy()) for x, y, r in ds]

    single = batches(start_example=start)
    shards = []
    for w in range(2):
        first, stride, size = worker_stream(global_batch=b, num_workers=2, worker_index=w, start=start)
        shards.append(batches(start_example=first, stride=stride, batch_size=size))
    for s in range(steps):
        assert list(single[s][2]) == list(range(start + s * b, start + (s + 1) * b))
        mix, labels, index = (np.concatenate([shards[0][s][k], shards[1][s][k]]) for k in range(3))
        np.testing.assert_array_equal(index, single[s][2])
        np.testing.assert_array_equal(labels, single[s][1])
        # the effects run on half as many rows per call: float32 rounding (measured <= 1.2e-7)
        np.testing.assert_allclose(mix, single[s][0], rtol=0, atol=1e-6)
        assert np.abs(single[s][0]).max() > 0.01  # real audio, not silence


@pytest.mark.parametrize(
    ("env", "role"),
    [
        ({}, "single"),
        ({"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}, "chief"),
        ({"KERASTUNER_TUNER_ID": "worker3", "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}, "worker"),
        ({"KERASTUNER_TUNER_ID": "worker3"}, "single"),  # no oracle address: a one-process search
    ],
)
def test_tuner_role_from_keras_tuner_variables(env, role):
    from keras_inst.training.distribute import tuner_role

    assert tuner_role(env) == role


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}, "KERASTUNER_TUNER_ID is not"),
        ({"KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_TUNER_ID": "w"}, "KERASTUNER_ORACLE_PORT is not"),
        ({"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_TUNER_ID": "w", "KERASTUNER_ORACLE_PORT": "http"}, "must be a TCP port, got 'http'"),
    ],
)
def test_incomplete_tuner_variables_are_a_value_error_naming_them(env, match):
    from keras_inst.training.distribute import tuner_role

    with pytest.raises(ValueError, match=match):
        tuner_role(env)


STEP_SCRIPT = r"""
import json, os, sys
import numpy as np
from keras_inst.config.io import load_config
from keras_inst.training import distribute as dist

sets, data, init, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
cfg = load_config("demo", sets)
name = "multi_worker" if "TF_CONFIG" in os.environ else "default"
strategy = dist.make_strategy(name)  # before any other TensorFlow op
cluster = dist.cluster_spec(name)
import keras
import tensorflow as tf
from keras_inst.training.metrics import keras_metrics
from keras_inst.training.train import build_compiled_model

arrays = np.load(data)
x, y = arrays["x"], arrays["y"]  # the global batch: [B, T], [B, 15]
first, _, b = dist.worker_stream(global_batch=len(x), num_workers=cluster.num_workers,
                                 worker_index=cluster.worker_index)
with strategy.scope():
    model = build_compiled_model(cfg)
    model.load_weights(init)
    dist.synchronize_batch_norm(model, strategy.num_replicas_in_sync)
    # SGD: the update IS the gradient. Adam's first step, lr * g / (|g| + eps), is +-lr for
    # most weights whatever g is, and arbitrary for the near-zero gradients of conv biases
    # that a BatchNorm follows, so it would compare signs, not gradients.
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=keras.losses.BinaryCrossentropy(),
                  metrics=keras_metrics())
ds = tf.data.Dataset.from_tensors((x[first:first + b], y[first:first + b])).repeat()
ds = dist.distributed_stream(strategy, ds, global_batch=len(x), num_workers=cluster.num_workers)
model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
# validation as fit runs it: Keras shards the finite dataset over the workers (batches of 3:
# 3, 3, 2 examples) and reduces the metrics' states
scores = model.evaluate(tf.data.Dataset.from_tensor_slices((x, y)).batch(3), verbose=0, return_dict=True)
if cluster.is_chief:
    np.savez(out, *[np.asarray(w) for w in model.get_weights()])
    with open(out + ".json", "w") as f:
        json.dump({k: float(v) for k, v in scores.items()}, f)
"""


def test_one_synchronous_step_of_two_workers_equals_one_single_process_step(tmp_path):
    import keras

    from keras_inst.config.io import load_config
    from keras_inst.training.train import build_compiled_model

    # dropout off: its masks are drawn per replica; everything else is deterministic
    sets = [*TINY, "model.dropout=0.0"]
    cfg = load_config("demo", sets)
    keras.utils.set_random_seed(0)
    model = build_compiled_model(cfg)
    init = tmp_path / "init.weights.h5"
    model.save_weights(init)
    rng = np.random.default_rng(0)
    b, t = cfg.training.batch_size, cfg.audio.chunk_samples
    x = (0.1 * rng.standard_normal((b, t))).astype(np.float32)
    y = (rng.random((b, 15)) < 0.3).astype(np.float32)
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    script = tmp_path / "step.py"
    script.write_text(STEP_SCRIPT)

    def cmd(out: Path) -> list[str]:
        return [sys.executable, str(script), json.dumps(sets), str(tmp_path / "batch.npz"), str(init), str(out)]

    ports = free_ports(2)
    single_env = {k: v for k, v in worker_env(ports, 0, tmp_path).items() if k != "TF_CONFIG"}
    single = Cluster([cmd(tmp_path / "single.npz")], [single_env], [tmp_path / "single.txt"])
    assert single.wait(TIMEOUT) == [0], single.tails()
    pair = Cluster([cmd(tmp_path / "pair.npz")] * 2, [worker_env(ports, i, tmp_path) for i in range(2)],
                   [tmp_path / f"pair{i}.txt" for i in range(2)])
    assert pair.wait(TIMEOUT) == [0, 0], pair.tails()

    before = [np.asarray(w) for w in model.get_weights()]
    one = list(np.load(tmp_path / "single.npz").values())
    two = list(np.load(tmp_path / "pair.npz").values())
    assert len(one) == len(two) == len(before)
    moved = max(float(np.max(np.abs(a - w))) for a, w in zip(one, before, strict=True))
    assert moved > 1e-3  # the step changed the weights
    for a, c in zip(one, two, strict=True):
        np.testing.assert_allclose(c, a, rtol=1e-4, atol=1e-6)
    # the evaluation of the stepped model: the same loss and AUCs over the whole set
    scores_one = json.loads((tmp_path / "single.npz.json").read_text())
    scores_two = json.loads((tmp_path / "pair.npz.json").read_text())
    assert set(scores_one) == set(scores_two) >= {"loss", "roc_auc", "pr_auc"}
    for k in scores_one:
        assert scores_two[k] == pytest.approx(scores_one[k], rel=1e-4), k


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
@pytest.mark.loopback
def test_a_killed_worker_restarted_with_the_cluster_resumes_from_the_last_epoch(corpus, tmp_path):
    run = tmp_path / "run"
    extra = ("training.epochs=3", "training.steps_per_epoch=4")
    cluster = start_cluster(corpus, run, tmp_path, *extra, tag="a")
    state = run / "state.json"
    deadline = time.time() + TIMEOUT
    try:
        while time.time() < deadline:
            if state.is_file() and json.loads(state.read_text()).get("epochs_done", 0) >= 1:
                break
            if any(p.poll() is not None for p in cluster.procs):
                pytest.fail(f"a worker exited early:\n{cluster.tails()}")
            time.sleep(0.2)
        else:
            pytest.fail(f"no epoch finished in time:\n{cluster.tails()}")
        cluster.kill(1)  # SIGKILL mid-training
        # The chief's collectives fail once its peer is gone (TensorFlow's health check).
        t0 = time.time()
        chief_code = cluster.procs[0].wait(timeout=TIMEOUT)
        chief_wait = time.time() - t0
    finally:
        cluster.kill()
    done_before = json.loads(state.read_text())["epochs_done"]
    assert chief_code != 0 and 1 <= done_before < 3 and not (run / "model.keras").exists()
    print(f"chief exited {chief_wait:.1f} s after the worker was killed (code {chief_code})")

    again = start_cluster(corpus, run, tmp_path, *extra, tag="b")
    assert again.wait(TIMEOUT) == [0, 0], again.tails()
    for i in range(2):
        assert f"Resuming {run} after epoch {done_before}" in again.output(i)
    assert sorted(set(epochs_in_history(run))) == ["0", "1", "2"]
    state_after = json.loads(state.read_text())
    assert state_after["complete"] and state_after["epochs_done"] == 3


# ------------------------------------------------------------------------------------------
# Distributed keras-tuner search: one chief (the oracle) and two workers

TUNE_TINY = [
    "data.datasets=[rendered]",
    "data.render_songs=0",
    "tuner.p_musical_values=[0.0, 1.0]",
    "tuner.seeds=2",
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

# keras_inst.tune's main, with every training run (one build_data call per execution)
# appended to $TRAINED_LOG as {"p_musical", "seed", "tuner"}: O_APPEND lines do not interleave.
TUNE_DRIVER = r"""
import json, os, sys
from keras_inst.data import pipeline

real = pipeline.build_data

def spy(cfg, **kwargs):
    line = {"p_musical": cfg.mixing.p_musical, "seed": cfg.training.seed,
            "tuner": os.environ.get("KERASTUNER_TUNER_ID", "single")}
    with open(os.environ["TRAINED_LOG"], "a") as f:
        f.write(json.dumps(line) + "\n")
    return real(cfg, **kwargs)

pipeline.build_data = spy
from keras_inst.training.tune import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def tune_sets(corpus, tmp_path_factory) -> list[str]:
    """TUNE_TINY on the rendered corpus, with an audio cache built for the tuner's config."""
    from keras_inst.config.io import load_config
    from keras_inst.data.cache.store import ensure_cache
    from keras_inst.data.datasets import read_dataset

    root = corpus[0]
    cache = tmp_path_factory.mktemp("tune_cache")
    sets = [*TUNE_TINY, f"data.roots.rendered={root}", f"data.cache_dir={cache}"]
    ensure_cache(load_config("fig2_p_musical", sets), read_dataset("rendered", root)[0], workers=1, progress=False)
    return sets


def run_search(sets: list[str], tune_dir: Path, tmp: Path, roles: list[str], tag: str,
               until=None) -> tuple[Cluster, list[dict]]:
    """``python -m keras_inst.tune`` in one process per role ('single', 'chief', 'workerN');
    with ``until``, SIGKILL them all as soon as ``until()`` is true."""
    script = tmp / "tune_driver.py"
    script.write_text(TUNE_DRIVER)
    log = tmp / f"trained_{tag}.jsonl"
    cmd = [sys.executable, str(script), "--config", "fig2_p_musical", "--dir", str(tune_dir)]
    cmd += [a for s in sets for a in ("--set", s)]
    (port,) = free_ports(1)
    envs = []
    for role in roles:
        env = dict(os.environ, TRAINED_LOG=str(log), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                   OMP_NUM_THREADS="1")
        if role != "single":
            env |= {"KERASTUNER_TUNER_ID": role, "KERASTUNER_ORACLE_IP": "127.0.0.1",
                    "KERASTUNER_ORACLE_PORT": str(port)}
        envs.append(env)
    cluster = Cluster([cmd] * len(roles), envs, [tmp / f"tune_{tag}_{r}.txt" for r in roles])
    if until is not None:  # kill every process once until() holds
        deadline = time.time() + 2 * TIMEOUT
        while not until() and time.time() < deadline and all(p.poll() is None for p in cluster.procs):
            time.sleep(0.2)
        cluster.kill()
        assert until(), f"the interruption point was not reached:\n{cluster.tails()}"
    else:
        assert cluster.wait(2 * TIMEOUT) == [0] * len(roles), cluster.tails()
    lines = log.read_text().splitlines() if log.is_file() else []
    return cluster, [json.loads(x) for x in lines]


def seed_rows(results: dict) -> dict[tuple[float, int], tuple]:
    """(p_musical, seed index) -> its validation metrics, from results.json."""
    return {
        (r["p_musical"], i): tuple(r[f"per_seed_{m}"][i] for m in ("val_roc_auc", "val_pr_auc", "val_loss"))
        for r in results["rows"] for i in range(r["seeds"])
    }


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
@pytest.mark.loopback
def test_distributed_search_trains_every_value_and_seed_once_like_one_process(tune_sets, tmp_path):
    dist_dir, single_dir = tmp_path / "dist", tmp_path / "single"
    cluster, trained = run_search(tune_sets, dist_dir, tmp_path, ["chief", "worker0", "worker1"], "dist")
    # every (value, seed) trained exactly once, by the workers only
    assert sorted((t["p_musical"], t["seed"]) for t in trained) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]
    assert {t["tuner"] for t in trained} <= {"worker0", "worker1"}
    for i in (1, 2):
        assert "the chief writes the results" in cluster.output(i)
    assert "Best p_musical" in cluster.output(0)
    dist_results = json.loads((dist_dir / "results.json").read_text())

    _, trained_single = run_search(tune_sets, single_dir, tmp_path, ["single"], "single")
    assert len(trained_single) == 4
    single_results = json.loads((single_dir / "results.json").read_text())
    a, b = seed_rows(dist_results), seed_rows(single_results)
    assert sorted(a) == sorted(b) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, err_msg=str(key))
    assert dist_results["best_p_musical"] == single_results["best_p_musical"]


def finished_seeds(tune_dir: Path) -> set[tuple[float, int]]:
    """(p_musical, seed) of every execution recorded in the trials' executions.json."""
    out = set()
    for path in (tune_dir / "search").glob("trial_*/executions.json"):
        record = json.loads(path.read_text())
        out |= {(record["p_musical"], s["seed"]) for s in record["seeds"]}
    return out


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
@pytest.mark.loopback
def test_an_interrupted_distributed_search_resumes_without_retraining_finished_seeds(tune_sets, tmp_path):
    tune_dir = tmp_path / "dist"
    roles = ["chief", "worker0", "worker1"]
    run_search(tune_sets, tune_dir, tmp_path, roles, "killed", until=lambda: bool(finished_seeds(tune_dir)))
    before = finished_seeds(tune_dir)
    assert 1 <= len(before) < 4 and not (tune_dir / "results.json").exists()

    cluster, trained = run_search(tune_sets, tune_dir, tmp_path, roles, "resumed")
    # the rerun trains exactly the seeds not finished before the kill, each once
    every = {(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)}
    assert sorted((t["p_musical"], t["seed"]) for t in trained) == sorted(every - before)
    results = json.loads((tune_dir / "results.json").read_text())
    assert all(r["complete"] and r["seeds"] == 2 for r in results["rows"])
    assert finished_seeds(tune_dir) == every
    assert "Best p_musical" in cluster.output(0)
