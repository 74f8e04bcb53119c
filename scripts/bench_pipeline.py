"""Benchmark the training input pipeline against the model's training rate and NumPy baselines.

Prints one JSON object: examples/s of the training stream (configs/paper.yaml mixing and
effects: up to 6 sources, every effect at its configured probability) on a rendered corpus,
with all cores and with one core; of the alternatives considered (the shared intra-op pool,
effects per example before batching, Python generators with parallel interleave, audio in
memory vs memory-mapped, the stream without effects, glibc's malloc thresholds raised); of
three single-process baselines of the same augmentation on the same recipes (the
straightforward NumPy chain of keras_inst.augment.reference at hop 256 and at the TF chain's hop
512, and audiomentations' librosa chain); and of the paper model's training step (batch 16).
Every variant runs in its own process, so no variant's background prefetching disturbs another.

    python scripts/bench_pipeline.py [--root /tmp/rendered100] [--batches 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_inst import atomic

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**31)}
VARIANTS = ("chosen", "shared_intra_op_pool", "per_example_effects", "generator_interleave",
            "in_memory_audio", "no_effects", "one_core", "numpy_baseline", "numpy_baseline_hop512",
            "librosa_baseline", "model_train_step")


def _config(root: str, cache_dir: str):
    from keras_inst.config.io import load_config

    return load_config("paper", ["data.datasets=[rendered]", f"data.roots.rendered={root}",
                                 f"data.cache_dir={cache_dir}", "training.transfer=scratch",
                                 "training.pretrained=null", "training.batch_size=16"])


def _sampler(cfg):
    from keras_inst.data.mixing import RecipeSampler
    from keras_inst.data.pipeline import build_data

    bundle = build_data(cfg, progress=False)
    return RecipeSampler(bundle.sampler.table, cfg.mixing, cfg.effects, seed=0), bundle


def _timed(n_examples: int, wall: float, cpu: float) -> dict:
    """Wall-clock rate, and CPU seconds (all threads of this process) per example: the second
    does not depend on what else runs on the machine, the first does."""
    return {"examples_per_s": round(n_examples / wall, 2), "seconds": round(wall, 2),
            "cpu_ms_per_example": round(1e3 * cpu / n_examples, 2),
            "examples_per_cpu_s": round(n_examples / cpu, 2)}


def _rate(ds, *, batches: int, warmup: int, batch_size: int) -> dict:
    it = iter(ds)
    t0 = time.perf_counter()
    for _ in range(warmup):
        next(it)
    t1, c1 = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    out = _timed(batches * batch_size, time.perf_counter() - t1, time.process_time() - c1)
    del it  # a live iterator over numpy_function datasets can hang the interpreter's exit
    return {**out, "batches": batches, "warmup_seconds": round(t1 - t0, 2)}


def _example_specs(sampler, t_in: int):
    """Specs of ``_draw_example``: (RecipeArrays, audio int16 [N, t_in], scales float32 [N])."""
    import tensorflow as tf

    return (sampler.array_specs(), tf.TensorSpec((sampler.n_max, t_in), tf.int16),
            tf.TensorSpec((sampler.n_max,), tf.float32))


def _draw_example(sampler, i: int, t_in: int) -> tuple:
    """Training recipe ``i`` and the chunks of all its N slots (zeros for PAD slots)."""
    from keras_inst.data.pipeline import gather_sources

    rec = sampler.train_arrays(i)
    return (rec, *gather_sources(sampler.table, rec.stems, rec.starts, t_in))


def per_example_dataset(cfg, sampler, *, start_example: int = 0, batch_size: int | None = None):
    """Alternative: the pipeline's earlier design, effects per example before batching: one
    numpy_function (recipe + all N chunks) and one effects call per example, then batch.
    The same examples as ``training_dataset`` up to float rounding; only this benchmark uses it."""
    import tensorflow as tf

    from keras_inst.data.mixing import finish_recipe, numpy_call
    from keras_inst.data.pipeline import mix_sources, training_input_samples

    t_in = training_input_samples(cfg)
    specs = _example_specs(sampler, t_in)

    def example(i):
        rec, audio, scales = numpy_call(lambda j: _draw_example(sampler, int(j), t_in), [i], specs)
        return {**finish_recipe(rec, sampler=sampler), "audio": audio, "scales": scales}

    def mix_one(r):
        params = type(r["params"])(*(p[None] for p in r["params"]))
        mix = mix_sources(r["audio"][None], r["scales"][None], params, r["valid"][None],
                          out_samples=cfg.audio.chunk_samples, sample_rate=cfg.audio.sample_rate,
                          peak_normalize=cfg.mixing.peak_normalize, random_effects=True)[0]
        return mix, r["labels"]

    ds = tf.data.Dataset.range(start_example, tf.int64.max)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(mix_one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size or cfg.training.batch_size, drop_remainder=True)
    opts = tf.data.Options()
    opts.threading.max_intra_op_parallelism = 1  # as the chosen pipeline (its default)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(opts)


def _generator_dataset(cfg, sampler, workers: int = 4):
    """Alternative: per-example Python generators, interleaved in parallel, batched effects."""
    import tensorflow as tf

    from keras_inst.data.mixing import finish_recipe
    from keras_inst.data.pipeline import mix_sources, training_input_samples

    t_in = training_input_samples(cfg)
    rec_specs, audio_spec, scales_spec = _example_specs(sampler, t_in)
    sig = {**rec_specs._asdict(), "audio": audio_spec, "scales": scales_spec}

    def gen(w):
        i = int(w)
        while True:
            rec, audio, scales = _draw_example(sampler, i, t_in)
            yield {**rec._asdict(), "audio": audio, "scales": scales}
            i += workers

    ds = tf.data.Dataset.range(workers).interleave(
        lambda w: tf.data.Dataset.from_generator(gen, output_signature=sig, args=(w,)),
        cycle_length=workers, num_parallel_calls=workers, deterministic=True)
    ds = ds.map(lambda r: finish_recipe(r, sampler=sampler), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(cfg.training.batch_size, drop_remainder=True)

    def mix(r):
        return mix_sources(r["audio"], r["scales"], r["params"], r["valid"],
                           out_samples=cfg.audio.chunk_samples,
                           sample_rate=cfg.audio.sample_rate,
                           peak_normalize=cfg.mixing.peak_normalize, random_effects=True), r["labels"]

    return ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _recipes(sampler, n_examples: int) -> list[tuple]:
    """The first ``n_examples`` recipes of the TF stream: (n, stems, starts, params) each."""
    from keras_inst.data.mixing import recipe_dataset

    recs = []
    for r in recipe_dataset(sampler, count=n_examples).batch(n_examples):
        params = type(r["params"])(*(p.numpy() for p in r["params"]))
        for i in range(n_examples):
            recs.append((r["n"][i].numpy(), r["stems"][i].numpy(), r["starts"][i].numpy(),
                         type(params)(*(p[i] for p in params))))
    return recs


def _effects_numpy(hop: int):
    """The straightforward NumPy chain (keras_inst.augment.reference) at phase-vocoder ``hop``."""
    from keras_inst.augment.reference import apply_effects_np

    def one(x, p, *, out_samples: int, sample_rate: int):
        return apply_effects_np(x, p, out_samples=out_samples, sample_rate=sample_rate, hop=hop)

    return one


def _effects_librosa():
    """What an audiomentations user runs: its Gain, Low/HighShelfFilter and PeakingFilter
    (RBJ biquads through scipy.signal.sosfilt), TimeStretch and PitchShift with
    method="librosa_phase_vocoder" (librosa.effects.time_stretch / pitch_shift with their
    defaults: n_fft 2048, hop 512, soxr_hq resampling), float32, one transform after the other.
    Imported once here, not in the timed per-source function."""
    import librosa
    import numpy as np
    import scipy.signal

    from keras_inst.augment.reference import SHELF_Q, rbj_biquad

    def eq(y, p, sample_rate: int):
        for kind, f0, db, q in (("low_shelf", p.low_shelf_hz, p.low_shelf_db, SHELF_Q),
                                ("high_shelf", p.high_shelf_hz, p.high_shelf_db, SHELF_Q),
                                ("peaking", p.peak_hz, p.peak_db, p.peak_q)):
            if db != 0.0:
                b, a = rbj_biquad(kind, f0, db, q=q, sample_rate=sample_rate)
                y = scipy.signal.sosfilt(scipy.signal.tf2sos(b, a), y).astype(np.float32)
        return y

    def one(x, p, *, out_samples: int, sample_rate: int):
        y = x * np.float32(10.0 ** (p.gain_db / 20.0))
        if p.eq_first:
            y = eq(y, p, sample_rate)
        if p.rate != 1.0:
            y = librosa.effects.time_stretch(y, rate=float(p.rate))
        y = y[: out_samples + 2048]
        if p.semitones != 0.0:
            y = librosa.effects.pitch_shift(y, sr=sample_rate, n_steps=float(p.semitones),
                                            res_type="soxr_hq")
        y = y[:out_samples]
        if not p.eq_first:
            y = eq(y, p, sample_rate)
        return np.pad(y, (0, out_samples - len(y)))

    return one


def _single_process(cfg, sampler, n_examples: int, apply_one) -> dict:
    """Per example, per source: read the chunk, ``apply_one`` its effects, sum, normalise;
    the same recipes and parameters as the TF stream (drawn beforehand, not timed)."""
    import numpy as np

    from keras_inst.augment.params import IDENTITY, params_item
    from keras_inst.data.pipeline import training_input_samples

    t_in, t = training_input_samples(cfg), cfg.audio.chunk_samples
    table = sampler.table
    recs = _recipes(sampler, n_examples)
    # Lazy imports and first-call set-up (librosa's, soxr's) are not timed: warm up every effect.
    every = IDENTITY._replace(gain_db=-3.0, low_shelf_db=3.0, high_shelf_db=3.0, peak_db=3.0,
                              semitones=1.0, rate=1.1)
    noise = np.random.default_rng(0).standard_normal(t_in).astype(np.float32)
    for eq_first in (True, False):
        apply_one(noise, every._replace(eq_first=eq_first), out_samples=t,
                  sample_rate=cfg.audio.sample_rate)
    t0, c0 = time.perf_counter(), time.process_time()
    for n, stems, starts, params in recs:
        mix = np.zeros(t, np.float32)
        for j in range(int(n)):
            k = int(stems[j])
            lo = int(starts[j])
            x = np.zeros(t_in, np.float32)
            chunk = table.audio[k][lo: lo + t_in].astype(np.float32) * table.scales[k]
            x[: chunk.size] = chunk
            mix += apply_one(x, params_item(params, j), out_samples=t,
                             sample_rate=cfg.audio.sample_rate)
        peak = np.abs(mix).max()
        if peak > cfg.mixing.peak_normalize:
            mix *= cfg.mixing.peak_normalize / peak
    return {**_timed(n_examples, time.perf_counter() - t0, time.process_time() - c0),
            "examples": n_examples}


def _model_rate(steps: int) -> dict:
    import numpy as np

    from keras_inst.config.io import load_config
    from keras_inst.training.train import build_compiled_model

    cfg = load_config("paper", ["training.transfer=scratch", "training.pretrained=null"])
    model = build_compiled_model(cfg)
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((16, cfg.audio.chunk_samples))).astype(np.float32)
    y = (rng.random((16, 15)) < 0.3).astype(np.float32)
    for _ in range(2):  # trace and warm up
        model.train_on_batch(x, y)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return {**_timed(steps * 16, time.perf_counter() - t0, time.process_time() - c0),
            "steps": steps, "params": int(model.count_params())}


# Single-process baselines of the same augmentation (same recipes and parameters); each entry
# makes the per-source function (imports and set-up outside the timed loop):
# numpy_baseline: keras_inst.augment.reference with its reference phase vocoder (n_fft 1024, hop 256,
# librosa's default overlap n_fft / 4); numpy_baseline_hop512: the same at the TF chain's hop
# (TF_PV_HOP = 512); librosa_baseline: audiomentations' librosa_phase_vocoder chain.
BASELINES = {
    "numpy_baseline": lambda: _effects_numpy(256),
    "numpy_baseline_hop512": lambda: _effects_numpy(512),
    "librosa_baseline": _effects_librosa,
}

# name -> (dataset kind, keyword arguments of training_dataset, tf.data thread options)
PIPELINES = {
    "chosen": ("tf", {}, {}),  # keras_inst.data.pipeline.training_dataset's defaults
    "shared_intra_op_pool": ("tf", {"intra_op_parallelism": None}, {}),
    "per_example_effects": ("per_example", {}, {}),
    "generator_interleave": ("generator", {}, {}),
    "in_memory_audio": ("memory", {}, {}),
    "no_effects": ("tf", {"random_effects": False}, {}),
    "one_core": ("tf", {}, {"private_threadpool_size": 1, "max_intra_op_parallelism": 1}),
}


def run_variant(name: str, args: argparse.Namespace) -> dict:
    """One measurement in this process."""
    import tensorflow as tf

    if name == "one_core":  # before TensorFlow starts its thread pools
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if name == "model_train_step":
        return _model_rate(args.model_steps)
    from keras_inst.data.pipeline import training_dataset

    cfg = _config(args.root, args.cache_dir)
    sampler, bundle = _sampler(cfg)
    if name in BASELINES:
        if name == "librosa_baseline":
            try:
                import librosa  # noqa: F401
            except ImportError:
                return {"skipped": "librosa is not installed (pip install '.[test]')"}
        return _single_process(cfg, sampler, args.numpy_examples, BASELINES[name]())
    if name not in PIPELINES:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    kind, kw, threading = PIPELINES[name]
    if kind == "generator":
        ds = _generator_dataset(cfg, sampler)
    elif kind == "per_example":
        ds = per_example_dataset(cfg, sampler)
    else:
        if kind == "memory":
            cons = bundle.cache.consolidate(sampler.table.entries)
            sampler.table.audio = [cons.audio[o: o + n] for o, n in
                                   zip(cons.offsets, cons.lengths, strict=True)]
        ds = training_dataset(cfg, sampler, **kw)
    if threading:
        opts = tf.data.Options()
        for key, value in threading.items():
            setattr(opts.threading, key, value)
        ds = ds.with_options(opts)
    out = _rate(ds, batches=args.batches, warmup=args.warmup, batch_size=cfg.training.batch_size)
    out["songs"] = sampler.table.num_songs
    out["stems"] = len(sampler.table.entries)
    return out


def _ratio(results: dict, a: str, b: str) -> float | None:
    ra, rb = results.get(a, {}), results.get(b, {})
    if "examples_per_cpu_s" in ra and "examples_per_cpu_s" in rb:
        return round(ra["examples_per_cpu_s"] / rb["examples_per_cpu_s"], 2)
    return None


def _subprocess(name: str, args: argparse.Namespace, env: dict | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, __file__, "--variant", name, "--json-variant", str(out),
           "--root", args.root, "--cache-dir", args.cache_dir, "--batches", str(args.batches),
           "--warmup", str(args.warmup), "--numpy-examples", str(args.numpy_examples),
           "--model-steps", str(args.model_steps)]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    result = json.loads(out.read_text())
    out.unlink()
    result["process_seconds"] = round(time.perf_counter() - t0, 1)
    return result


def ensure_corpus(root: str | Path, *, songs: int, **render_kw) -> None:
    """Render ``songs`` songs of the embedded corpus into ``root``, or finish a render that was
    interrupted there (``render_corpus`` keeps the finished tracks and renders the rest).

    A complete rendered corpus, or a Slakh-layout folder that was not rendered here (Track
    folders, no corpus description), is used as it is. ``render_kw`` goes to ``render_corpus``.
    """
    from keras_inst.corpus.render import CORPUS_FILE, render_corpus

    root = Path(root).expanduser()
    desc_file = root / CORPUS_FILE
    if desc_file.is_file():
        try:
            desc = json.loads(desc_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            desc = {}  # render_corpus reports the unreadable file
        if desc.get("complete"):
            return
        songs = max(songs, int(desc.get("songs", 0)))  # finish the render that was started
        print(f"{root}: finishing an interrupted render of {songs} songs", file=sys.stderr)
    elif any(root.glob("Track*")):
        return
    else:
        print(f"{root}: rendering {songs} songs there", file=sys.stderr)
    render_corpus(root, songs=songs, seed=0, sample_rate=16000, **render_kw)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/tmp/rendered100", help="rendered corpus (Slakh layout)")
    p.add_argument("--render-songs", type=int, default=20,
                   help="songs to render if --root holds no corpus (an interrupted render is finished)")
    p.add_argument("--cache-dir", default=None, help="audio cache (default: <tmp>/keras_inst_bench_cache)")
    p.add_argument("--batches", type=int, default=40, help="timed batches of 16 per variant")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--numpy-examples", type=int, default=160)
    p.add_argument("--repeat", type=int, default=3, help="runs per variant (median reported)")
    p.add_argument("--model-steps", type=int, default=5)
    p.add_argument("--only", nargs="*", default=None, help="run only these variants")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json-variant", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.cache_dir = args.cache_dir or str(Path(tempfile.gettempdir()) / "keras_inst_bench_cache")
    if args.variant:
        atomic.write_json(args.json_variant, run_variant(args.variant, args), indent=None)
        return 0
    ensure_corpus(args.root, songs=args.render_songs)
    # Build the cache once up front (not timed), so no variant pays for decoding.
    import logging

    logging.disable(logging.WARNING)
    from keras_inst.data.cache.store import ensure_cache
    from keras_inst.data.datasets import read_dataset

    songs, _ = read_dataset("rendered", args.root)
    ensure_cache(_config(args.root, args.cache_dir), songs, progress=False)
    names = [n for n in (args.only or [*VARIANTS, "malloc_thresholds"])]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for _ in range(args.repeat):  # round robin, so load changes on the machine hit all variants
        for name in names:
            if name == "malloc_thresholds":
                r = _subprocess("chosen", args, MALLOC_ENV)
            else:
                r = _subprocess(name, args)
            runs[name].append(r)
            print(f"{name}: {r}", file=sys.stderr)
    results: dict = {}
    for name, rs in runs.items():
        ok = [r for r in rs if "examples_per_s" in r]
        if not ok:
            results[name] = rs[0]
            continue
        rates = sorted(r["examples_per_s"] for r in ok)
        cpu = sorted(r["examples_per_cpu_s"] for r in ok)
        results[name] = {**ok[0], "examples_per_s": rates[len(rates) // 2],
                         "examples_per_cpu_s": cpu[len(cpu) // 2],
                         "runs_examples_per_s": [r["examples_per_s"] for r in ok],
                         "runs_examples_per_cpu_s": [r["examples_per_cpu_s"] for r in ok]}
        results[name]["cpu_ms_per_example"] = round(1e3 / results[name]["examples_per_cpu_s"], 2)
        if name == "malloc_thresholds":
            results[name]["env"] = MALLOC_ENV
    chosen_name = "chosen"

    def wall(a: str, b: str) -> float | None:
        ra, rb = results.get(a, {}), results.get(b, {})
        if "examples_per_s" in ra and "examples_per_s" in rb:
            return round(ra["examples_per_s"] / rb["examples_per_s"], 2)
        return None

    ratios = {"pipeline_over_model": wall(chosen_name, "model_train_step"),
              "one_core_over_model": wall("one_core", "model_train_step"),
              # per CPU second (all threads): independent of other load on the machine
              "pipeline_over_model_per_cpu_s": _ratio(results, chosen_name, "model_train_step")}
    for base in BASELINES:
        key = base.replace("_baseline", "")
        ratios[f"pipeline_over_{key}"] = wall(chosen_name, base)
        ratios[f"pipeline_over_{key}_per_cpu_s"] = _ratio(results, chosen_name, base)
    doc = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_at_end": os.getloadavg()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "corpus": args.root, "pipeline": chosen_name, "batch_size": 16,
        "results": results, "ratios": ratios,
    }
    text = json.dumps(doc, indent=1)
    print(text)
    if args.out:
        atomic.write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
