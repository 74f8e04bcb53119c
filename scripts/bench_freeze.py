"""Training-step time of the main job's network per partly frozen setting (``training.trainable_blocks``).

A frozen leading block needs no backward pass at all (the waveform needs no gradient), and the
VGG's first two blocks run at the full log-mel resolution, where most of its multiply-adds are:
so what freezing saves depends on the CPU, and is measured here rather than estimated. Every
variant is built in one process and the steps are interleaved (one step of each, in turn), so
the ratios share whatever else the machine runs; compare ratios, not seconds, across runs.

Variants: ``all`` (plain fine-tuning, ``trainable_blocks: null``), an integer n (only the last n
blocks train), a ``+distill`` suffix adds learning without forgetting
(``training.distill_weight=1``: the teacher's pass and the student's tag branch).

    python scripts/bench_freeze.py [--config demo] [--variants all,4,3,3+distill,2] [--steps 5] [--out FILE]

Prints one JSON object: per variant the median seconds per step and its ratio to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path


def variant_sets(variant: str) -> list[str]:
    """``--set`` overrides of one variant name (``all`` | n, optionally ``+distill``)."""
    blocks, _, extra = variant.partition("+")
    if extra not in ("", "distill"):
        raise ValueError(f"variant {variant!r}: the only suffix is '+distill'")
    if blocks != "all" and not blocks.isdigit():
        raise ValueError(f"variant {variant!r}: expected 'all' or a block count, e.g. 3 or 3+distill")
    sets = [f"training.trainable_blocks={'null' if blocks == 'all' else blocks}"]
    return [*sets, "training.distill_weight=1"] if extra else sets


def build_step(config: str, sets: list[str]):
    """The compiled main-job model of ``config`` + ``sets`` and a closure running one training
    step on a fixed random batch of waveforms ``[batch, chunk_samples]``."""
    import keras
    import numpy as np

    from keras_inst.config.io import load_config
    from keras_inst.training.distill import prepare_distillation
    from keras_inst.training.train import build_compiled_model

    cfg = load_config(config, sets)
    keras.utils.set_random_seed(0)
    model = build_compiled_model(cfg)
    prepare_distillation(model, cfg)  # no-op unless training.distill_weight > 0
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((cfg.training.batch_size, cfg.audio.chunk_samples))).astype(np.float32)
    y = (rng.random((cfg.training.batch_size, 15)) < 0.3).astype(np.float32)
    return lambda: model.train_on_batch(x, y)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo", help="config file or shipped name (default: demo)")
    ap.add_argument("--variants", default="all,4,3,3+distill,2", help="comma-separated (module doc)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant, after one untimed")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    steps = {v: build_step(args.config, variant_sets(v)) for v in variants}
    for step in steps.values():  # tracing and first-touch allocations, untimed
        step()
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.steps):
        for v, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[v].append(time.perf_counter() - t0)
    medians = {v: statistics.median(t) for v, t in times.items()}
    first = medians[variants[0]]
    result = {
        "config": args.config, "steps": args.steps,
        "seconds_per_step": {v: round(m, 3) for v, m in medians.items()},
        "ratio_to_first": {v: round(m / first, 3) for v, m in medians.items()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "avx512": "avx512f" in _cpu_flags(), "load_average_end": os.getloadavg()},
    }
    print(json.dumps(result, indent=2))
    if args.out:
        from keras_inst.atomic import write_json

        write_json(args.out, result)
    return result


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return ""


if __name__ == "__main__":
    main()
