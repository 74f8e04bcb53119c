"""Benchmark the training stream with the realism effects (beyond the paper) on and off.

Prints one JSON object: examples/s (wall) and CPU ms per example of
``keras_inst.data.pipeline.training_dataset`` (batch 16) with ``--config``'s mixing and paper
effects and: no realism effects (``off``), all of the config's realism effects (``all``), and
each one alone at the config's setting (``only_<effect>``). Every variant runs in its own
process, ``--repeat`` times round robin (median reported). The NumPy baseline and the model's
training rate are ``scripts/bench_pipeline.py``'s (``--only numpy_baseline model_train_step``).

    python scripts/bench_realism.py --root /tmp/rendered100 [--config demo] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EFFECTS = ("reverb", "compressor", "saturation", "band_limit", "noise")
VARIANTS = ("off", "all", *(f"only_{e}" for e in EFFECTS))


def _config(args: argparse.Namespace, variant: str):
    from keras_inst.config.io import load_config

    keep = EFFECTS if variant == "all" else (variant[5:],) if variant.startswith("only_") else ()
    off = [f"effects.{e}.probability=0.0" for e in EFFECTS if e not in keep]
    return load_config(args.config, [
        "data.datasets=[rendered]", f"data.roots.rendered={args.root}",
        f"data.cache_dir={args.cache_dir}", "training.transfer=scratch",
        "training.pretrained=null", "training.batch_size=16", *off])


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Examples/s of one variant in this process (after ``--warmup`` batches)."""
    from keras_inst.data.pipeline import build_data

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    bundle = build_data(_config(args, variant), progress=False)
    it = iter(bundle.train)
    for _ in range(args.warmup):
        next(it)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
        next(it)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    del it  # a live iterator over numpy_function datasets can hang the interpreter's exit
    n = 16 * args.batches
    return {"examples_per_s": round(n / wall, 2), "cpu_ms_per_example": round(1e3 * cpu / n, 2)}


def _subprocess(variant: str, args: argparse.Namespace) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, __file__, "--variant", variant, "--json-variant", str(out),
           "--root", args.root, "--cache-dir", args.cache_dir, "--config", args.config,
           "--batches", str(args.batches), "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    result = json.loads(out.read_text())
    out.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/tmp/rendered100", help="rendered corpus (Slakh layout)")
    p.add_argument("--cache-dir", default=None, help="audio cache (default: <tmp>/keras_inst_bench_cache)")
    p.add_argument("--config", default="demo", help="config whose effects blocks are measured")
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--only", nargs="*", default=None, help="run only these variants")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json-variant", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.cache_dir = args.cache_dir or str(Path(tempfile.gettempdir()) / "keras_inst_bench_cache")
    from keras_inst import atomic

    if args.variant:
        atomic.write_json(Path(args.json_variant), run_variant(args.variant, args))
        return 0
    names = args.only or list(VARIANTS)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for _ in range(args.repeat):  # round robin: load changes on the machine hit every variant
        for name in names:
            runs[name].append(_subprocess(name, args))
            print(f"{name}: {runs[name][-1]}", file=sys.stderr)
    results = {}
    for name, rs in runs.items():
        ok = [r for r in rs if "examples_per_s" in r]
        if not ok:
            results[name] = rs[0]
            continue
        mid = len(ok) // 2
        results[name] = {k: sorted(r[k] for r in ok)[mid] for k in ok[0]}
        results[name]["runs_examples_per_s"] = [r["examples_per_s"] for r in ok]
    doc = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "config": args.config,
           "corpus": args.root, "batch_size": 16, "cpus": os.cpu_count(),
           "load_avg_at_end": os.getloadavg(), "results": results}
    text = json.dumps(doc, indent=1)
    print(text)
    if args.out:
        atomic.write_text(Path(args.out), text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
