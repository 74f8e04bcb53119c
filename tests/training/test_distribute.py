"""keras_inst.training.distribute: TF_CONFIG, chief, batch arithmetic, stream sharding, and one
GroupedOptimizer step under MirroredStrategy (2 logical CPUs, in a subprocess) against one
single-device step on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_inst.config.io import load_config
from keras_inst.training.distribute import (
    SINGLE_PROCESS,
    ClusterSpec,
    cluster_spec,
    is_chief,
    make_strategy,
    parse_tf_config,
    per_replica_batch,
    shard_indices,
    worker_stream,
)

HOSTS = ["h0:2222", "h1:2222", "h2:2222"]


def tf_config(task_type: str, index: int, *, chief: bool = False, workers: list[str] = HOSTS) -> str:
    cluster: dict = {"worker": workers}
    if chief:
        cluster["chief"] = ["c0:2222"]
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


# ---- TF_CONFIG and the chief ----


def test_workers_without_a_chief_worker_0_is_chief():
    specs = [parse_tf_config(tf_config("worker", i)) for i in range(3)]
    assert [(s.num_workers, s.worker_index, s.is_chief) for s in specs] == [(3, 0, True), (3, 1, False), (3, 2, False)]


def test_with_a_chief_it_is_worker_0_and_workers_shift_by_one():
    assert parse_tf_config(tf_config("chief", 0, chief=True)) == ClusterSpec("chief", 0, 4, 0)
    assert parse_tf_config(tf_config("worker", 0, chief=True)) == ClusterSpec("worker", 0, 4, 1)
    assert not parse_tf_config(tf_config("worker", 2, chief=True)).is_chief


def test_evaluator_is_not_a_training_worker():
    raw = json.dumps({"cluster": {"worker": HOSTS, "evaluator": ["e:1"]}, "task": {"type": "evaluator", "index": 0}})
    spec = parse_tf_config(raw)
    assert (spec.num_workers, spec.worker_index, spec.is_chief) == (3, -1, False)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (None, "TF_CONFIG: is not set"),
        ("", "TF_CONFIG: is not set"),
        ("{not json", "TF_CONFIG: is not valid JSON"),
        (json.dumps({"cluster": {"worker": HOSTS}}), 'TF_CONFIG: must be a JSON object with "cluster" and "task"'),
        (json.dumps({"cluster": {"worker": "h0:1"}, "task": {"type": "worker", "index": 0}}), "cluster.worker must be a list"),
        (json.dumps({"cluster": {"worker": HOSTS, "ps": ["p:1"]}, "task": {"type": "worker", "index": 0}}), "parameter servers"),
        (json.dumps({"cluster": {"workers": HOSTS}, "task": {"type": "worker", "index": 0}}), "unknown cluster role 'workers'"),
        (tf_config("worker", 3), r"task worker:3 is not in the cluster \(3 worker"),
        (tf_config("chief", 0), r"task chief:0 is not in the cluster \(0 chief"),
        (tf_config("master", 0), "task must be"),
        (json.dumps({"cluster": {"worker": HOSTS}, "task": {"type": "worker", "index": "1"}}), "task must be"),
    ],
)
def test_malformed_tf_config_is_a_value_error_naming_it(raw, match):
    with pytest.raises(ValueError, match=match) as e:
        parse_tf_config(raw)
    assert "training.strategy=multi_worker" in str(e.value)


def test_outside_multi_worker_every_process_is_the_chief_and_tf_config_is_ignored():
    env = {"TF_CONFIG": tf_config("worker", 2)}
    assert cluster_spec("default", env) == SINGLE_PROCESS
    assert is_chief("mirrored", env)
    assert not is_chief("multi_worker", env)
    assert is_chief("multi_worker", {"TF_CONFIG": tf_config("worker", 0)})


def test_strategy_names_are_checked_in_the_config_and_the_factory():
    assert load_config("paper").training.strategy == "default"
    assert load_config("paper", ["training.strategy=mirrored"]).training.strategy == "mirrored"
    with pytest.raises(ValueError, match="'training.strategy': must be one of default, mirrored, multi_worker, got 'tpu'"):
        load_config("paper", ["training.strategy=tpu"])
    with pytest.raises(ValueError, match="'training.strategy'"):
        make_strategy("tpu")
    with pytest.raises(ValueError, match="TF_CONFIG: is not set"):
        make_strategy("multi_worker", env={})
    with pytest.raises(ValueError, match="mirrored only"):
        make_strategy("default", devices=["/cpu:0"])


# ---- batches and the example-index stream ----


def test_per_replica_batch_divides_the_global_batch():
    assert [per_replica_batch(16, n) for n in (1, 2, 4, 8, 16)] == [16, 8, 4, 2, 1]
    with pytest.raises(ValueError, match=r"'training.batch_size': the global batch \(16\) must be a positive multiple of the number of replicas \(3\)"):
        per_replica_batch(16, 3)
    with pytest.raises(ValueError, match="num_replicas"):
        per_replica_batch(16, 0)


@pytest.mark.parametrize("num_workers", [1, 2, 4, 8])
def test_shards_partition_the_stream_and_rebuild_each_global_batch(num_workers):
    global_batch, steps = 16, 5
    stream = np.arange(1000, 1000 + steps * global_batch)  # a stream that does not start at 0
    shards = [shard_indices(stream, global_batch=global_batch, num_workers=num_workers, worker_index=w) for w in range(num_workers)]
    together = np.concatenate(shards)
    assert len(together) == len(stream) and len(np.unique(together)) == len(stream)  # no index twice
    assert set(together.tolist()) == set(stream.tolist())  # union = single-process stream
    per = global_batch // num_workers
    for s in range(steps):  # step s of all workers, in worker order = single-process batch s
        batch = np.concatenate([sh[s * per : (s + 1) * per] for sh in shards])
        np.testing.assert_array_equal(batch, stream[s * global_batch : (s + 1) * global_batch])


def test_worker_stream_matches_shard_indices():
    # (first, stride, batch): the batch starts a worker's Dataset.range(first, inf, stride) draws.
    assert worker_stream(global_batch=16, num_workers=1, worker_index=0, start=64) == (64, 16, 16)
    assert [worker_stream(global_batch=16, num_workers=4, worker_index=w) for w in range(4)] == [(0, 16, 4), (4, 16, 4), (8, 16, 4), (12, 16, 4)]
    stream = np.arange(160)
    for w in range(4):
        first, stride, batch = worker_stream(global_batch=16, num_workers=4, worker_index=w)
        drawn = np.concatenate([np.arange(s, s + batch) for s in range(first, 160, stride)])
        np.testing.assert_array_equal(drawn, shard_indices(stream, global_batch=16, num_workers=4, worker_index=w))
    with pytest.raises(ValueError, match="worker_index"):
        worker_stream(global_batch=16, num_workers=2, worker_index=2)
    with pytest.raises(ValueError, match="multiple of the global batch 16"):
        shard_indices(np.arange(20), global_batch=16, num_workers=2, worker_index=0)


# ---- GroupedOptimizer + BatchNorm under MirroredStrategy (2 logical CPU devices) ----

MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
# Must run before TensorFlow initialises its devices: hence a fresh process.
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_optimizers import cfg, data, toy_model
from keras_inst.models.optimizers import build_optimizer
from keras_inst.training.distribute import make_strategy, synchronize_batch_norm

c = cfg("finetune")
x, y = data(32)
out = {}

def one_step(strategy, sync=True):
    with strategy.scope():
        m = toy_model(seed=0)
        if sync:
            out[f"switched_{strategy.num_replicas_in_sync}"] = synchronize_batch_norm(m, strategy.num_replicas_in_sync)
        m.compile(optimizer=build_optimizer(c, m), loss="binary_crossentropy")
    before = {v.path: np.array(v) for v in m.weights}
    m.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)  # ONE step on the global batch
    return m, {v.path: np.array(v) - before[v.path] for v in m.weights}

single, d1 = one_step(make_strategy("default"))
mirrored = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
out["replicas"] = mirrored.num_replicas_in_sync
multi, d2 = one_step(mirrored)
out["max_diff"] = {p: float(np.abs(np.array(a) - np.array(b)).max()) for p, a, b in ((v.path, v, w) for v, w in zip(single.weights, multi.weights))}
out["update"] = {p: float(np.abs(d2[p]).mean()) for p in ("b_dense/kernel", "h_dense/kernel")}
out["moved"] = {p: float(np.abs(d2[p]).max()) for p in ("b_bn/moving_mean", "b_bn/moving_variance")}
out["iterations"] = [int(multi.optimizer.iterations.numpy())] + [int(o.iterations.numpy()) for o in multi.optimizer.inner_optimizers]
_, d3 = one_step(mirrored, sync=False)
out["unsynced_moving_mean_diff"] = float(np.abs(d3["b_bn/moving_mean"] - d1["b_bn/moving_mean"]).max())
# A checkpoint written under the strategy loads in one process with the same weights.
multi.save(sys.argv[2])
restored = keras.saving.load_model(sys.argv[2])
out["restored_diff"] = max(float(np.abs(np.array(a) - np.array(b)).max()) for a, b in zip(multi.weights, restored.weights))
# An optimizer made outside the scope is refused with a message, not TF's "Mixing different ...".
m = toy_model(seed=0)
opt = build_optimizer(c, m)
with mirrored.scope():
    m2 = toy_model(seed=0)
    m2.compile(optimizer=opt, loss="binary_crossentropy")
try:
    m2.fit(x, y, batch_size=32, epochs=1, verbose=0)
    out["outside_scope"] = "no error"
except ValueError as e:
    out["outside_scope"] = str(e)
# mixed_float16: compile wraps the grouped optimizer in a LossScaleOptimizer; both groups step.
keras.mixed_precision.set_global_policy("mixed_float16")
with mirrored.scope():
    m3 = toy_model(seed=0)
    synchronize_batch_norm(m3, 2)
    m3.compile(optimizer=build_optimizer(c, m3), loss="binary_crossentropy")
b3 = {v.path: np.array(v) for v in m3.weights}
m3.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
out["f16_optimizer"] = type(m3.optimizer).__name__
out["f16_update"] = {p: float(np.abs(np.array(v) - b3[v.path]).mean()) for v in m3.weights for p in [v.path] if p in ("b_dense/kernel", "h_dense/kernel")}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def mirrored_step(tmp_path_factory) -> dict:
    tests_models = Path(__file__).resolve().parents[1] / "models"
    ckpt = tmp_path_factory.mktemp("mirrored") / "m.keras"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(tests_models), str(ckpt)], capture_output=True, text=True, env=env, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_mirrored_step_equals_single_device_step(mirrored_step):
    r = mirrored_step
    assert r["replicas"] == 2 and (r["switched_1"], r["switched_2"]) == (0, 1)  # one BN layer, synced only with 2 replicas
    # weights, BN gamma/beta and moving statistics, after one step on the same global batch
    assert set(r["max_diff"]) == {"b_dense/kernel", "b_dense/bias", "b_bn/gamma", "b_bn/beta", "b_bn/moving_mean", "b_bn/moving_variance", "h_dense/kernel", "h_dense/bias"}
    assert max(r["max_diff"].values()) < 1e-5
    assert min(r["moved"].values()) > 1e-3  # the moving statistics did move
    assert r["iterations"] == [1, 1, 1]  # one step counted once, not once per replica


def test_mirrored_step_honours_both_groups_learning_rates(mirrored_step):
    # Adam's first step moves each parameter by ~lr: head 0.01, fine-tuned backbone 1e-4.
    assert r_close(mirrored_step["update"]["h_dense/kernel"], 1e-2)
    assert r_close(mirrored_step["update"]["b_dense/kernel"], 1e-4)


def test_without_synchronized_batch_norm_the_replicas_statistics_differ(mirrored_step):
    # Why synchronize_batch_norm exists: per-replica batch statistics change the step.
    assert mirrored_step["unsynced_moving_mean_diff"] > 1e-3


def test_checkpoint_saved_under_the_strategy_restores_in_one_process(mirrored_step):
    assert mirrored_step["restored_diff"] == 0.0


def r_close(value: float, expected: float, rel: float = 0.05) -> bool:
    return abs(value - expected) <= rel * expected


def test_optimizer_made_outside_the_scope_is_refused_clearly(mirrored_step):
    assert "created under a different tf.distribute strategy than the one in use (MirroredStrategy)" in mirrored_step["outside_scope"]


def test_mixed_float16_under_the_strategy_scales_the_loss_and_keeps_the_groups(mirrored_step):
    assert mirrored_step["f16_optimizer"] == "LossScaleOptimizer"
    assert r_close(mirrored_step["f16_update"]["h_dense/kernel"], 1e-2)
    assert r_close(mirrored_step["f16_update"]["b_dense/kernel"], 1e-4)
