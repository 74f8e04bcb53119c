"""tf.distribute for training (``training.strategy``): strategies, workers, batches, shards.

* ``default``: Keras' default strategy, one process, one device.
* ``mirrored``: :class:`tf.distribute.MirroredStrategy` over the GPUs of one host (or the
  CPU when there is none). One input pipeline; Keras splits each global batch over replicas.
* ``multi_worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy` across hosts, from the
  ``TF_CONFIG`` environment variable (parsed and checked here first: a malformed ``TF_CONFIG``
  otherwise fails deep inside TensorFlow or, worse, trains as a one-worker cluster).

``training.batch_size`` is always the GLOBAL batch, so steps per epoch, the epoch-based LR
schedule and the examples seen per step keep their meaning for any number of replicas. Each
worker draws ``global_batch / num_workers`` examples per step from the example-index stream:
worker w takes the w-th contiguous block of every global batch (:func:`shard_indices`), so the
union over workers at step s is exactly the single-process batch s, no index repeats, and a
run is reproducible given (seed, number of workers). BatchNorm must then see the global batch
too: :func:`synchronize_batch_norm` (per-replica statistics would make a mirrored step differ
from a single-device step).

TensorFlow is imported inside the functions that need it: importing this module has no side
effects and the pure parts (TF_CONFIG parsing, shard arithmetic) need no TensorFlow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_inst.config.schema import STRATEGIES


@dataclass(frozen=True)
class ClusterSpec:
    """This process's place in a multi-worker cluster, from ``TF_CONFIG``."""

    task_type: str  # chief | worker | evaluator
    task_index: int
    num_workers: int  # processes that train: chief (if any) + workers
    worker_index: int  # 0 .. num_workers-1 (the chief is 0); -1 for an evaluator

    @property
    def is_chief(self) -> bool:
        """The process that writes checkpoints, logs and the final model."""
        return self.worker_index == 0


SINGLE_PROCESS = ClusterSpec(task_type="worker", task_index=0, num_workers=1, worker_index=0)


def _tf_config_error(message: str) -> ValueError:
    return ValueError(f"TF_CONFIG: {message} (training.strategy=multi_worker reads the cluster from it)")


def parse_tf_config(raw: str | None) -> ClusterSpec:
    """Check ``TF_CONFIG`` (a JSON string) and return this task's :class:`ClusterSpec`.

    The cluster lists ``worker`` (and optionally one ``chief``) addresses; ``task`` names this
    process's type and index. With a chief, it is worker 0 and ``worker`` i is worker i + 1;
    without one, ``worker`` 0 is the chief (TensorFlow's convention).
    """
    if raw is None or not raw.strip():
        raise _tf_config_error("is not set")
    try:
        conf = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _tf_config_error(f"is not valid JSON ({e})") from None
    if not isinstance(conf, Mapping) or not isinstance(conf.get("cluster"), Mapping) or not isinstance(conf.get("task"), Mapping):
        raise _tf_config_error('must be a JSON object with "cluster" and "task" objects')
    cluster, task = conf["cluster"], conf["task"]
    for role, hosts in cluster.items():
        if role not in ("chief", "worker", "evaluator", "ps"):
            raise _tf_config_error(f"unknown cluster role {role!r}")
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise _tf_config_error(f"cluster.{role} must be a list of 'host:port' strings, got {hosts!r}")
    if cluster.get("ps"):
        raise _tf_config_error("parameter servers ('ps') are not supported; use chief/worker only")
    chiefs, workers = cluster.get("chief", []), cluster.get("worker", [])
    if len(chiefs) > 1:
        raise _tf_config_error(f"at most one chief, got {len(chiefs)}")
    if not chiefs and not workers:
        raise _tf_config_error("cluster names no chief and no worker")
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in ("chief", "worker", "evaluator") or isinstance(task_index, bool) or not isinstance(task_index, int):
        raise _tf_config_error(f'task must be {{"type": chief|worker|evaluator, "index": int}}, got {dict(task)!r}')
    n_role = len(cluster.get(task_type, []))
    if not 0 <= task_index < n_role:
        raise _tf_config_error(f"task {task_type}:{task_index} is not in the cluster ({n_role} {task_type} address(es))")
    if task_type == "evaluator":
        worker_index = -1
    elif task_type == "chief":
        worker_index = 0
    else:
        worker_index = task_index + len(chiefs)
    return ClusterSpec(task_type, task_index, len(chiefs) + len(workers), worker_index)


def cluster_spec(strategy_name: str, env: Mapping[str, str] | None = None) -> ClusterSpec:
    """This process's :class:`ClusterSpec` for ``training.strategy`` (one process unless multi_worker)."""
    _check_name(strategy_name)
    if strategy_name != "multi_worker":
        return SINGLE_PROCESS
    return parse_tf_config((os.environ if env is None else env).get("TF_CONFIG"))


def is_chief(strategy_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether this process writes checkpoints, logs and exports (always, outside multi_worker)."""
    return cluster_spec(strategy_name, env).is_chief


def _check_name(name: str) -> None:
    if name not in STRATEGIES:
        raise ValueError(f"config key 'training.strategy': must be one of {', '.join(STRATEGIES)}, got {name!r}")


def make_strategy(name: str, *, devices: list[str] | None = None, env: Mapping[str, str] | None = None) -> Any:
    """The ``tf.distribute.Strategy`` for ``training.strategy``.

    Build the model AND compile it (the optimizer) inside ``strategy.scope()``. ``devices``
    (mirrored only) overrides the default of every visible GPU (or the CPU without one).
    ``multi_worker`` checks ``TF_CONFIG`` (from ``env``, default ``os.environ``) before
    TensorFlow sees it; TensorFlow itself reads ``os.environ``, so ``env`` is for checks and tests.

    Multi-worker input: give each worker its own stream with :func:`worker_stream` through
    ``strategy.distribute_datasets_from_function`` (Keras ``fit`` accepts the result), so that
    tf.data's auto-sharding (which would draw every batch on every worker and drop most) is not
    used. With ``mirrored``, one stream of global batches is enough.
    """
    _check_name(name)
    if devices is not None and name != "mirrored":
        raise ValueError(f"devices= applies to training.strategy=mirrored only, got {name!r}")
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    spec = parse_tf_config((os.environ if env is None else env).get("TF_CONFIG"))
    if spec.worker_index < 0:
        raise ValueError("TF_CONFIG: this task is an evaluator; it does not train (run evaluation instead)")
    return _multi_worker_strategy()


def per_replica_batch(global_batch: int, num_replicas: int) -> int:
    """Examples per replica per step; the global batch must divide evenly (else replicas differ)."""
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
    if global_batch < 1 or global_batch % num_replicas:
        raise ValueError(
            f"config key 'training.batch_size': the global batch ({global_batch}) must be a positive "
            f"multiple of the number of replicas ({num_replicas})"
        )
    return global_batch // num_replicas


def worker_stream(*, global_batch: int, num_workers: int, worker_index: int, start: int = 0) -> tuple[int, int, int]:
    """``(first, stride, batch)`` of one worker's batch starts in the example-index stream.

    Worker w's step-s batch is indices ``first + s * stride + [0, batch)``, i.e.
    ``tf.data.Dataset.range(first, inf, stride)`` of batch starts, each drawing ``batch``
    consecutive examples (the pipeline's batched draw). One worker: ``(start, B, B)``.
    """
    if not 0 <= worker_index < num_workers:
        raise ValueError(f"worker_index must be in [0, {num_workers}), got {worker_index}")
    batch = per_replica_batch(global_batch, num_workers)
    return start + worker_index * batch, global_batch, batch


def shard_indices(indices: np.ndarray, *, global_batch: int, num_workers: int, worker_index: int) -> np.ndarray:
    """The part of a single-process example-index stream that one worker draws.

    ``indices`` is the stream in order (length a multiple of ``global_batch``); worker w takes
    the w-th block of ``global_batch / num_workers`` from every global batch. Concatenating the
    workers' step-s blocks in worker order gives the single-process step-s batch.
    """
    indices = np.asarray(indices)
    if indices.ndim != 1 or len(indices) % global_batch:
        raise ValueError(f"indices must be 1-D with a length that is a multiple of the global batch {global_batch}, got shape {indices.shape}")
    _, _, batch = worker_stream(global_batch=global_batch, num_workers=num_workers, worker_index=worker_index)
    # [steps, workers, per-worker batch]: worker w's blocks are column w
    return indices.reshape(-1, num_workers, batch)[:, worker_index].reshape(-1)


def synchronize_batch_norm(model: Any, num_replicas: int) -> int:
    """Make every BatchNormalization of ``model`` use global-batch statistics across replicas.

    Call inside the strategy's scope, before the first training step (the flag is read when the
    step is traced). With one replica it does nothing: the layer's single-device path is
    unchanged. Returns the number of layers switched.
    """
    if num_replicas <= 1:
        return 0
    import keras

    switched = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            switched += 1
    return switched


def _all_layers(model: Any) -> list:
    # Model.layers lists direct children only; the backbone and head are nested models.
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        out += _all_layers(layer)
    return out


def distributed_stream(strategy: Any, dataset: Any, *, global_batch: int, num_workers: int) -> Any:
    """The input Keras ``fit`` takes under ``strategy`` for a worker's training stream.

    ``dataset`` yields this worker's share of every global batch (``global_batch /
    num_workers`` examples, drawn as :func:`worker_stream` says). One worker: ``dataset`` itself
    (Keras splits each batch over the local replicas). Several: no further sharding
    (``distribute_datasets_from_function``); a worker with k local replicas splits each of its
    batches into k consecutive blocks, replica r taking block r, so the replicas' batches at
    step s still make up the single-process batch s in order.
    """
    if num_workers <= 1:
        return dataset

    def per_worker(ctx: Any) -> Any:
        local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        if local == 1:
            return dataset
        return dataset.rebatch(per_replica_batch(global_batch, ctx.num_replicas_in_sync))

    return strategy.distribute_datasets_from_function(per_worker)


def _multi_worker_strategy() -> Any:
    """``tf.distribute.MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3 gives it.

    Keras 3's ``fit`` and ``evaluate`` call ``strategy.reduce`` under this strategy
    (keras-team/keras#20585) with a whole (x, y) batch structure, only to learn its shapes for
    building the compiled metrics, and with ``axis=0`` on the scalar losses and metrics of every
    step; TensorFlow rejects both ("Attempt to convert a value (PerReplica...)", "Invalid
    reduction dimension 0 for input with 0 dimensions"). Here a structure gives this worker's
    first replica's batch (no collective: on a partial last batch the workers' shapes differ,
    and the all-reduce would fail on the mismatch) and a scalar is reduced over the replicas.
    """
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            if isinstance(value, (tuple, list, dict)):
                return tf.nest.map_structure(lambda v: self.experimental_local_results(v)[0], value)
            if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
                axis = None  # a scalar: its mean/sum over the replicas
            return super().reduce(reduce_op, value, axis)

    return MultiWorkerMirroredStrategy()


TUNER_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def tuner_role(env: Mapping[str, str] | None = None) -> str:
    """This process's part in a keras-tuner search: 'single', 'chief' or 'worker'.

    keras-tuner's own mechanism: with ``KERASTUNER_ORACLE_IP`` set, the process whose
    ``KERASTUNER_TUNER_ID`` contains 'chief' serves the oracle (gRPC, on
    ``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT``) and trains nothing; every other one is a
    worker that asks it for trials. Checked here so a missing variable names itself.
    """
    env = os.environ if env is None else env
    if not env.get("KERASTUNER_ORACLE_IP"):
        return "single"
    missing = [k for k in TUNER_ENV if not env.get(k)]
    if missing:
        raise ValueError(f"distributed search: KERASTUNER_ORACLE_IP is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not (set all of {', '.join(TUNER_ENV)})")
    port = env["KERASTUNER_ORACLE_PORT"]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"distributed search: KERASTUNER_ORACLE_PORT must be a TCP port, got {port!r}")
    return "chief" if "chief" in env["KERASTUNER_TUNER_ID"] else "worker"
