"""Benchmark the training stream with the realism effects (beyond the paper) on and off.

Prints one JSON object: examples/s (wall) and CPU ms per example of
``keras_inst.data.pipeline.training_dataset`` (batch 16) with ``--config``'s mixing and paper
effects and: no realism effects (``off``), all of the config's realism effects (``all``), and
each one alone at the config's setting (``only_<effect>``; ``only_mix_bus`` at probability 1
when the config leaves the mix bus off, as demo.yaml does; ``only_ambience``: the non-music
beds of ``keras_inst.augment.ambience`` at probability 0.5 and no negatives when the config
leaves them off, ``all_ambience``: ``all`` plus those beds); and ``numpy_baseline``: the same
augmentation in one process the straightforward way (per source: the NumPy/SciPy paper chain
of ``keras_inst.augment.reference``, then tanh + ``sosfilt``, an ``lfilter`` RMS compressor,
NumPy noise, ``sosfiltfilt``; per mix ``fftconvolve`` with a NumPy room and, where drawn,
``reference.mix_bus_np``), on the same recipes and parameters (drawn beforehand, not timed). Every variant runs in its own process,
``--repeat`` times round robin (median reported). The model's training rate is
``scripts/bench_pipeline.py``'s (``--only model_train_step``).

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

REALISM = ("reverb", "compressor", "saturation", "band_limit", "noise", "mix_bus")
EFFECTS = (*REALISM, "ambience")
VARIANTS = ("off", "all", *(f"only_{e}" for e in EFFECTS), "all_ambience", "numpy_baseline")
AMBIENCE_BENCH_P = 0.5  # beds per mix when the config leaves them off (no negatives: the beds' own cost)


def _config(args: argparse.Namespace, variant: str):
    from keras_inst.config.io import load_config

    keep = (EFFECTS if variant in ("all", "all_ambience") else REALISM if variant == "numpy_baseline"
            else (variant[5:],) if variant.startswith("only_") else ())
    off = [f"effects.{e}.probability=0.0" for e in EFFECTS if e not in keep]
    if "ambience" not in keep:
        off.append("effects.ambience.negative_probability=0.0")
    cfg = load_config(args.config)
    if variant == "only_mix_bus" and cfg.effects.mix_bus.probability == 0:
        off.append("effects.mix_bus.probability=1.0")  # its cost, where the config has it off
    amb = cfg.effects.ambience
    if variant in ("only_ambience", "all_ambience") and amb.probability == amb.negative_probability == 0:
        off.append(f"effects.ambience.probability={AMBIENCE_BENCH_P}")
    return load_config(args.config, [
        "data.datasets=[rendered]", f"data.roots.rendered={args.root}",
        f"data.cache_dir={args.cache_dir}", "training.transfer=scratch",
        "training.pretrained=null", "training.batch_size=16", *off])


def _realism_np(y, r, rng, *, sample_rate: int):
    """The realism effects of one source ``y [T]`` (``r``: scalars of RealismParams), SciPy."""
    import numpy as np
    import scipy.signal as ss

    def rms(v):
        return float(np.sqrt(np.mean(v**2)))

    if r.drive_db > 0:
        level = rms(y)
        v = np.tanh(y * 10 ** (r.drive_db / 20) * 0.25 / max(level, 1e-9))
        v = ss.sosfilt(ss.butter(2, r.tone_hz, fs=sample_rate, output="sos"), v)
        y = v * level / max(rms(v), 1e-12)
    if r.ratio > 1:  # one-pole RMS detector (release), static curve, make-up
        level = rms(y)
        a = np.exp(-1.0 / (r.release_s * sample_rate))
        env = ss.lfilter([1 - a], [1, -a], y**2)
        over = np.maximum(10 * np.log10(env + 1e-20) - 20 * np.log10(level + 1e-10)
                          - r.threshold_db, 0.0)
        v = y * 10 ** (-over * (1 - 1 / r.ratio) / 20)
        y = v * level / max(rms(v), 1e-12)
    if r.noise_on:
        n = rng.standard_normal(y.size)
        if r.pink:
            spec = np.fft.rfft(n)
            spec[1:] /= np.sqrt(np.arange(1, spec.size))
            spec[0] = 0
            n = np.fft.irfft(spec, y.size)
        y = y + n * rms(y) / max(rms(n), 1e-12) * 10 ** (-r.snr_db / 20)
    if r.cutoff_hz > 0:
        sos = ss.butter(int(r.lp_order), min(r.cutoff_hz, 0.49 * sample_rate), fs=sample_rate,
                        output="sos")
        y = ss.sosfiltfilt(sos, y)
    return y.astype(np.float32)


def _numpy_baseline(args: argparse.Namespace) -> dict:
    """The straightforward single-process pipeline of the same augmentation (module doc)."""
    import numpy as np
    import scipy.signal as ss

    from keras_inst.augment.realism import RealismParams, draw_realism
    from keras_inst.augment.reference import apply_effects_np, mix_bus_np, params_item
    from keras_inst.data.mixing import recipe_dataset
    from keras_inst.data.pipeline import build_data, training_input_samples

    cfg = _config(args, "numpy_baseline")
    sampler = build_data(cfg, progress=False).sampler
    n_ex = 16 * args.batches
    rec = next(iter(recipe_dataset(sampler, count=n_ex).batch(n_ex)))
    real = draw_realism(rec["effects_seed"], sampler.n_max, cfg.effects, classes=rec["classes"])
    real = RealismParams(*(np.asarray(v) for v in real))
    params = type(rec["params"])(*(np.asarray(v) for v in rec["params"]))
    t_in, t, sr = training_input_samples(cfg), cfg.audio.chunk_samples, cfg.audio.sample_rate
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n_ex):
        mix, bus = np.zeros(t, np.float32), np.zeros(t, np.float32)
        for j in range(int(rec["n"][i])):
            k, lo = int(rec["stems"][i, j]), int(rec["starts"][i, j])
            x = np.zeros(t_in, np.float32)
            chunk = sampler.table.audio[k][lo: lo + t_in].astype(np.float32) * sampler.table.scales[k]
            x[: chunk.size] = chunk
            y = apply_effects_np(x, params_item(params, (i, j)), out_samples=t, sample_rate=sr)
            r = RealismParams(*(v[i, j].item() for v in real))
            y = _realism_np(y, r, rng, sample_rate=sr)
            mix += (1 - r.send) * y
            bus += r.send * y
        if real.rt60_s[i, 0] > 0:
            length = min(t, 2 * sr)
            tt = np.arange(length) / sr - round(real.predelay_s[i, 0] * sr) / sr
            h = np.where(tt >= 0, rng.standard_normal(length)
                         * np.exp(-np.log(1000) * np.maximum(tt, 0) / real.rt60_s[i, 0]), 0)
            mix += ss.fftconvolve(bus, h / np.sqrt(np.sum(h**2)))[:t].astype(np.float32)
        if real.bus_on[i, 0]:
            mix = mix_bus_np(mix, *(getattr(real, f)[i, 0] for f in (
                "bus_threshold_db", "bus_ratio", "bus_attack_s", "bus_release_s",
                "bus_target_lufs", "bus_ceiling_db", "bus_max_gain_db")), sample_rate=sr)
            mix = mix.astype(np.float32)
        peak = np.abs(mix).max()
        if peak > cfg.mixing.peak_normalize:
            mix *= cfg.mixing.peak_normalize / peak
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"examples_per_s": round(n_ex / wall, 2), "cpu_ms_per_example": round(1e3 * cpu / n_ex, 2)}


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Examples/s of one variant in this process (after ``--warmup`` batches)."""
    from keras_inst.data.pipeline import build_data

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if variant == "numpy_baseline":
        return _numpy_baseline(args)
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
