"""One run directory's lifecycle, shared by training, pre-training and the tuner.

A run directory holds everything of one run. Its resolved ``config.yaml`` is the run's identity:
a directory written by another config is refused (naming the keys that differ), never silently
overwritten. ``state.json`` records the progress (:class:`RunState`); every epoch is checkpointed
(``checkpoints/last.keras``, ``checkpoints/best.keras``), so running the same command again
resumes after the last finished epoch; at the end the best checkpoint becomes ``model.keras``
and the run is marked complete. Every file is written through :mod:`keras_inst.atomic`.

Distributed training (Keras' multi-worker convention): only the chief writes into the run
directory. A :class:`RunDir` made with ``is_chief=False`` reads the run directory like the chief
(identity, state, checkpoints to resume from) but writes into a private scratch folder outside
it, which :meth:`RunDir.close` discards.

Lifecycle::

    rd = RunDir(path)
    if rd.prepare(cfg, overwrite=...) == "complete": ...   # identity check, stale temp files
    start_keras(cfg.training)                               # precision and seed
    epoch = rd.resume_epoch()                               # 0: start fresh
    model = rd.load_or_build(epoch, build)                  # last checkpoint, or build()
    rd.mark_started()                                       # state.json: the run is the config's
    rd.fit(model, train_ds, val_ds, cfg.training, initial_epoch=epoch)
    report = rd.finalize(model, outputs=write_report)       # model.keras, outputs, complete

Training and pre-training run this through one skeleton, :func:`keras_inst.training.lifecycle.execute_run`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from keras_inst import atomic
from keras_inst.config.io import dump_config, from_dict, load_config
from keras_inst.config.schema import ExperimentConfig, TrainingConfig
from keras_inst.runtime.artifacts import RUN_CONFIG, RUN_MODEL, RUN_REPORT
from keras_inst.runtime.data_locations import record_data_locations

# The files only a run's own lifecycle reads (its readers' names are in runtime.artifacts).
STATE_FILE = "state.json"
LAST_CKPT = "checkpoints/last.keras"
BEST_CKPT = "checkpoints/best.keras"
HISTORY_FILE = "history.csv"
TENSORBOARD_DIR = "tensorboard"
RUN_DIR_HINT = "choose another --run-dir, or pass --overwrite to replace it"
NAN_HINT = (
    "Lower the learning rate (optimizer.head_learning_rate / backbone_learning_rate) or check "
    "the data (python -m keras_inst.data preview)"
)

R = TypeVar("R")


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, a run directory that belongs to another config)."""


@dataclass(frozen=True)
class RunState:
    """A run's progress (``state.json``): epochs finished, the best epoch so far, complete."""

    epochs_done: int = 0
    best_score: float | None = None  # val_roc_auc, or -loss without validation; higher is better
    best_epoch: int | None = None
    complete: bool = False

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RunState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def after_epoch(self, epoch: int, score: float) -> RunState:
        """The state once ``epoch`` (1-based) finished with ``score``; best moves on a strict gain."""
        best = self.is_better(score)
        return dataclasses.replace(
            self,
            epochs_done=epoch,
            best_score=float(score) if best else self.best_score,
            best_epoch=epoch if best else self.best_epoch,
            complete=False,
        )

    def is_better(self, score: float) -> bool:
        return score > (-math.inf if self.best_score is None else self.best_score)


def load_checkpoint(path: str | Path):
    """Load a .keras checkpoint in any process (see :func:`keras_inst.models.short_chunk.load_model`)."""
    from keras_inst.models.short_chunk import load_model

    return load_model(path)


def start_keras(training: TrainingConfig, *, seed: bool = True) -> None:
    """The process-wide Keras settings of a run: precision policy and (unless ``seed=False``) seed."""
    import keras

    if training.mixed_precision:
        keras.mixed_precision.set_global_policy(training.mixed_precision)
    if seed:
        keras.utils.set_random_seed(training.seed)


def differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (``mixing.p_musical``)."""
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return [] if old == new else [prefix or "<root>"]
    out: list[str] = []
    for key in list(old) + [k for k in new if k not in old]:
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in old or key not in new:
            out.append(name)
        else:
            out += differing_keys(old[key], new[key], name)
    return out


def _same_config(old_text: str, new_text: str) -> bool:
    """True when a saved config, read with today's defaults for keys it lacks, equals ``new_text``.

    A newer keras_inst adds config keys (with defaults that keep the old behaviour); a run or
    tuner directory made before that must still resume rather than be refused.
    """
    import yaml

    try:
        return dump_config(from_dict(yaml.safe_load(old_text) or {})) == new_text
    except (ValueError, TypeError, yaml.YAMLError):  # removed keys, damaged file: not the same
        return False


def _config_diff(old_text: str, new_text: str) -> list[str]:
    import yaml

    try:
        return differing_keys(yaml.safe_load(old_text), yaml.safe_load(new_text))
    except yaml.YAMLError:  # a damaged config.yaml: still refused, without the key list
        return []


@dataclass(frozen=True)
class RunDir:
    """A run directory: identity, state, atomic writes, checkpoints, resume and finalize.

    Reads come from ``path``; writes go to :attr:`write_dir`: ``path`` for the chief, a
    private scratch folder (outside ``path``) for a non-chief worker.
    """

    path: Path
    is_chief: bool = field(default=True, kw_only=True)
    write_dir: Path = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        scratch = self.path if self.is_chief else Path(tempfile.mkdtemp(prefix="keras_inst-worker-"))
        object.__setattr__(self, "write_dir", scratch)

    def close(self) -> None:
        """Discard a non-chief worker's scratch folder (the chief's run directory stays)."""
        if not self.is_chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity --------------------------------------------------------------------------
    def prepare(
        self, cfg: ExperimentConfig, *, overwrite: bool = False, noun: str = "run directory",
        hint: str = RUN_DIR_HINT, reclaim: bool = False,
    ) -> str:
        """Create or re-open the directory for ``cfg``: 'new', 'resume' or 'complete'.

        Another config's directory raises :class:`TrainingError` naming the differing keys,
        unless ``overwrite`` (the chief then deletes it first) or ``reclaim`` and that run never
        started (:meth:`mark_started`: its start failed, e.g. on a data root that does not
        exist), which is re-claimed the same way. Temporary files that a killed writer left
        behind are removed.
        """
        text = dump_config(cfg)
        cfg_path = self.path / RUN_CONFIG
        if cfg_path.is_file() and not overwrite:
            old = cfg_path.read_text(encoding="utf-8")
            if old != text and not _same_config(old, text):
                if reclaim and not self.started:
                    print(f"{noun} {self.path}: its run never started; re-claimed for this config")
                    return self.prepare(cfg, overwrite=True, noun=noun, hint=hint)
                keys = _config_diff(old, text)
                differ = f" (differs in {', '.join(keys)})" if keys else ""
                raise TrainingError(
                    f"{noun} {self.path} was made by a different config{differ}; {hint}"
                )
            self._clean_stale()
            if old != text:  # made before keys with these default values existed: same run
                self.write_text(RUN_CONFIG, text)
            return "complete" if self.read_state().complete else "resume"
        if overwrite and self.is_chief and self.path.exists():
            shutil.rmtree(self.path)
        self._clean_stale()
        self.write_text(RUN_CONFIG, text)
        record_data_locations(cfg, self.write_dir)  # relative data roots -> absolute (data_locations.json)
        return "new"

    @property
    def started(self) -> bool:
        """Whether the run got as far as training (``state.json`` exists, see :meth:`mark_started`)."""
        return (self.path / STATE_FILE).is_file()

    def mark_started(self) -> None:
        """Record that the run starts training: from now on the directory is its config's."""
        if not (self.write_dir / STATE_FILE).is_file():
            self.write_state(self.read_state())

    def bind(self, name: str, record: Mapping[str, Any], *, hint: str = RUN_DIR_HINT) -> None:
        """A JSON record that belongs to the run's identity besides its config (e.g. the input
        files): written on first use, afterwards it must be equal (else TrainingError)."""
        path = self.path / name
        if not path.is_file():
            self.write_json(name, dict(record))
            return
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != dict(record):
            changed = differing_keys(old, dict(record))
            raise TrainingError(
                f"run directory {self.path} was made with other {', '.join(changed)} "
                f"({name}); {hint}"
            )

    def _clean_stale(self) -> None:
        if self.is_chief:
            for folder in (self.path, self.path / "checkpoints"):
                if folder.is_dir():
                    atomic.clean_stale(folder)

    # -- files -------------------------------------------------------------------------------
    def _target(self, name: str) -> Path:
        out = self.write_dir / name
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def write_text(self, name: str, text: str) -> Path:
        return atomic.write_text(self._target(name), text)

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic.write_json(self._target(name), obj)

    def save_model(self, name: str, model) -> Path:
        """``model.save`` (weights and optimizer state) atomically; ``name`` ends in .keras."""
        return atomic.write_with(self._target(name), model.save)

    def read_json(self, name: str) -> dict:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def read_report(self) -> dict:
        """The report.json of a complete run."""
        return self.read_json(RUN_REPORT)

    def split_dir(self) -> Path | None:
        """``run_dir`` argument of :func:`keras_inst.data.pipeline.build_data`, which reuses or
        saves ``split.json`` there: the run directory, except for a non-chief worker before the
        chief saved the split (then the split is made in memory, the same from the same config)."""
        from keras_inst.data.splits import SPLIT_FILE

        return self.path if self.is_chief or (self.path / SPLIT_FILE).is_file() else None

    # -- state -------------------------------------------------------------------------------
    def read_state(self) -> RunState:
        """The run's progress; a fresh :class:`RunState` before the first epoch."""
        path = self.path / STATE_FILE
        return RunState.from_json(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else RunState()

    def write_state(self, state: RunState) -> None:
        self.write_json(STATE_FILE, state.to_json())

    # -- resume and fit ----------------------------------------------------------------------
    def resume_epoch(self) -> int:
        """Epochs to skip: those recorded as done, if a last checkpoint exists to go on from."""
        return self.read_state().epochs_done if (self.path / LAST_CKPT).is_file() else 0

    def load_or_build(self, initial_epoch: int, build: Callable[[], Any]):
        """The last checkpoint (model and optimizer state) when resuming, else ``build()``."""
        if initial_epoch > 0:
            print(f"Resuming {self.path} after epoch {initial_epoch}")
            return load_checkpoint(self.path / LAST_CKPT)
        return build()

    def callbacks(self) -> list:
        """NaN guard, CSV history, TensorBoard and the per-epoch checkpoint, in that order."""
        import keras

        return [
            _nan_batch_guard(),
            keras.callbacks.CSVLogger(str(self._target(HISTORY_FILE)), append=True),
            keras.callbacks.TensorBoard(log_dir=str(self.write_dir / TENSORBOARD_DIR), update_freq="epoch"),
            _epoch_checkpoint(self),
        ]

    def fit(
        self, model, train_ds, val_ds, training: TrainingConfig, *, initial_epoch: int,
        callbacks: Sequence = (), verbose: int | str = "auto",
    ) -> float:
        """Fit from ``initial_epoch`` to ``training.epochs`` with the run's callbacks, then
        ``callbacks`` (they see an epoch already saved); returns the seconds spent."""
        t0 = time.time()
        if initial_epoch < training.epochs:
            model.fit(
                train_ds,
                steps_per_epoch=training.steps_per_epoch,
                epochs=training.epochs,
                initial_epoch=initial_epoch,
                validation_data=val_ds,
                callbacks=self.callbacks() + list(callbacks),
                verbose=verbose,
                shuffle=False,  # the streams are random already; Keras cannot shuffle tf.data
            )
        return time.time() - t0

    # -- finalize ----------------------------------------------------------------------------
    def finalize(self, model, *, outputs: Callable[[Any], R]) -> R:
        """Best checkpoint (else ``model``) -> model.keras; ``outputs(final_model)`` writes the
        reports; only then is the run marked complete (a kill before that redoes this step)."""
        best = self.path / BEST_CKPT
        final = load_checkpoint(best) if best.is_file() else model
        self.save_model(RUN_MODEL, final)
        result = outputs(final)
        self.write_state(dataclasses.replace(self.read_state(), complete=True))
        return result


def _nan_error(loss: Any, where: str) -> TrainingError:
    return TrainingError(f"loss became {loss} {where}; stopping. {NAN_HINT}")


def _nan_batch_guard():
    """Stop within the epoch, with a clear message, as soon as a batch loss is NaN/inf."""
    import keras

    class NaNBatchGuard(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True
                raise _nan_error(loss, f"at batch {batch + 1}")

    return NaNBatchGuard()


def _epoch_checkpoint(rd: RunDir):
    """After every epoch: last checkpoint, best checkpoint on a gain, then state.json (in that
    order, so the state never names an epoch whose checkpoint is not written)."""
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            # Kept in memory: every worker takes the same decisions from the same (reduced) logs.
            self.state = rd.read_state()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            loss = logs.get("loss")
            if loss is None or not math.isfinite(loss):
                self.model.stop_training = True
                raise _nan_error(loss, f"in epoch {epoch + 1}")
            rd.save_model(LAST_CKPT, self.model)
            score = logs.get("val_roc_auc", -loss)
            if self.state.is_better(score):
                rd.save_model(BEST_CKPT, self.model)
            self.state = self.state.after_epoch(epoch + 1, score)
            rd.write_state(self.state)

    return EpochCheckpoint()


def config_and_run_dir(args: Any) -> tuple[ExperimentConfig, Path]:
    """The CLI's config (``--config``, ``--set``, ``--strategy``) and run directory
    (``--run-dir``, default ``runs/<config name>``), as train and pretrain read them."""
    strategy = [] if getattr(args, "strategy", None) is None else [f"training.strategy={args.strategy}"]
    cfg = load_config(args.config, [*args.overrides, *strategy])
    return cfg, Path(args.run_dir or Path("runs") / cfg.name)
