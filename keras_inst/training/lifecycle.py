"""The one run skeleton of training and pre-training: identity, strategy, data, model, fit, finalize.

:func:`execute_run` takes what differs between the two as a :class:`RunSteps` record and does
the rest in one order for both::

    prepare the run directory (identity check; a complete run returns its saved result)
    strategy -> per-replica batch check -> precision and seed
    data = load_data(run dir, initial epoch)         # may still fail: bad roots, missing files
    model = last checkpoint or build(data), under the strategy, BN synchronised, adapt(model)
    mark the run started                              # from here the directory is the config's
    fit -> a non-chief worker's result, or finalize (best checkpoint -> model.keras, outputs)

A start that fails before the run is marked started leaves a directory that the next command
may re-claim even with another config (the corrected command is not refused as "a different
config"); see :meth:`~keras_inst.training.run_dir.RunDir.prepare`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from keras_inst.config.schema import ExperimentConfig
from keras_inst.training.run_dir import RunDir, start_keras

D = TypeVar("D")
R = TypeVar("R")


def _nothing(model: Any) -> None:
    return None


@dataclass(frozen=True)
class RunSteps(Generic[D, R]):
    """What a kind of run does at each step of :func:`execute_run`."""

    load_data: Callable[[RunDir, int], D]  # (run dir, initial epoch) -> the run's data and streams
    build: Callable[[D], Any]  # a fresh compiled model (called under the strategy scope)
    streams: Callable[[D, Any], tuple[Any, Any]]  # (data, strategy) -> (training stream, validation)
    outputs: Callable[[Any, D, RunDir, float], R]  # (final model, data, run dir, seconds) -> result
    complete: Callable[[RunDir], R]  # the result of a run that is already complete
    adapt: Callable[[Any], None] = _nothing  # after build or resume, under the scope
    worker_result: Callable[[float], R] | None = None  # a non-chief's result (None: finalize too)


def execute_run(
    cfg: ExperimentConfig, run_dir: str | Path, steps: RunSteps[D, R], *, is_chief: bool = True,
    overwrite: bool = False, callbacks: Sequence = (), verbose: int | str = "auto",
) -> R:
    """Run (or resume, or return the saved result of) one run in ``run_dir`` (module doc).

    ``callbacks`` run after the checkpointing ones (an epoch they see is already saved);
    ``is_chief=False`` writes nothing into ``run_dir`` (:class:`RunDir`).
    """
    from keras_inst.training import distribute as dist

    with RunDir(run_dir, is_chief=is_chief) as rd:
        if rd.prepare(cfg, overwrite=overwrite, reclaim=True) == "complete":
            return steps.complete(rd)
        # Before any other TensorFlow op: MultiWorkerMirroredStrategy configures the collectives
        # at startup, and it waits here until every worker of TF_CONFIG has joined.
        strategy = dist.make_strategy(cfg.training.strategy)
        dist.per_replica_batch(cfg.training.batch_size, strategy.num_replicas_in_sync)
        start_keras(cfg.training)
        initial_epoch = rd.resume_epoch()
        data = steps.load_data(rd, initial_epoch)
        with strategy.scope():  # variables, optimizer slots and metrics are mirrored
            model = rd.load_or_build(initial_epoch, lambda: steps.build(data))
            dist.synchronize_batch_norm(model, strategy.num_replicas_in_sync)
            steps.adapt(model)
        train_ds, val_ds = steps.streams(data, strategy)
        rd.mark_started()
        seconds = rd.fit(model, train_ds, val_ds, cfg.training, initial_epoch=initial_epoch,
                         callbacks=callbacks, verbose=verbose)
        if not rd.is_chief and steps.worker_result is not None:
            return steps.worker_result(seconds)
        # The chief evaluates alone: finalize loads the best checkpoint outside the strategy.
        return rd.finalize(model, outputs=lambda final: steps.outputs(final, data, rd, seconds))
