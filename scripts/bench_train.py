"""Benchmark training throughput: the paper model in Keras and in its PyTorch reference.

CPU mode (this project's machines; TensorFlow, Keras and PyTorch installed) measures, each
variant in its own process so that allocator settings and thread pools apply to it alone:

* ``keras_fp32`` / ``keras_bf16``: the project's training step (``train_on_batch`` of the
  compiled paper model, waveform in, log-mel front end, GroupedOptimizer, metrics), float32
  and ``mixed_bfloat16``;
* ``keras_body_*``: backbone + head on a precomputed log-mel, the computation the PyTorch
  reference (:mod:`keras_inst.models.torch_reference`) does; ``torch_*``: that reference with
  Adam per group, under glibc's default malloc and with ``MALLOC_MMAP_THRESHOLD_`` /
  ``MALLOC_TRIM_THRESHOLD_`` raised (``*_malloc``), float32 and bfloat16 autocast;
* ``fit_*``: ``model.fit`` on the real training stream (``keras_inst.data.pipeline``) of a small
  rendered corpus (rendered into ``--root`` if absent): the model and the pipeline share the cores;
* ``pipeline``: the training stream alone (examples/s, CPU ms per example).

GPU mode (``--gpu``; a machine with PyTorch and JAX but no TensorFlow) times the PyTorch
reference on ``cuda`` and, when Keras is importable, backbone + head in Keras on JAX, loaded
from the JSON that ``--export-body DIR`` writes here (no keras_inst model code runs there).

    python scripts/bench_train.py [--steps 8] [--root /tmp/rendered_bench] [--out FILE]
    python scripts/bench_train.py --export-body .bench
    python scripts/bench_train.py --gpu --body .bench [--out FILE]

Prints one JSON object. Rates are examples/s of wall-clock time; ``cpu_ms_per_example`` counts
all threads of the process (it does not depend on what else the machine runs).
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

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**31)}
KERAS_STEPS = ("keras_fp32", "keras_bf16", "keras_body_fp32", "keras_body_bf16", "keras_bf16_xla", "keras_body_bf16_xla")
KERAS_MALLOC = ("keras_fp32_malloc", "keras_bf16_malloc")  # the same allocator settings as torch_*_malloc
TORCH_STEPS = ("torch_fp32", "torch_fp32_malloc", "torch_bf16", "torch_bf16_malloc")
CPU_VARIANTS = (*KERAS_STEPS, *KERAS_MALLOC, *TORCH_STEPS, "fit_fp32", "fit_bf16", "fit_bf16_malloc",
                "pipeline", "pipeline_raw", "mixdown", "fit_bf16_effects_in_step")
GPU_BATCHES = (16, 64, 256)
PAPER_SETS = ["training.transfer=scratch", "training.pretrained=null"]  # no weights to load


def _rate(n_examples: int, wall: float, cpu: float) -> dict:
    return {"examples_per_s": round(n_examples / wall, 2), "seconds": round(wall, 2),
            "cpu_ms_per_example": round(1e3 * cpu / n_examples, 2)}


def _paper_cfg(precision: str | None, extra: list[str] | None = None):
    from keras_inst.config.io import load_config

    sets = [*PAPER_SETS, *(extra or [])]
    if precision:
        sets.append(f"training.mixed_precision={precision}")
        import keras

        keras.mixed_precision.set_global_policy(precision)  # before any layer is built
    return load_config("paper", sets)


def body_model(cfg):
    """log-mel ``[B, n_mels, frames]`` -> probabilities: the paper model without its front end."""
    import keras

    from keras_inst.models.short_chunk import build_model

    full = build_model(cfg)
    backbone, head = full.get_layer("backbone"), full.get_layer("head")
    mel = keras.Input(tuple(backbone.input.shape[1:]), name="log_mel")
    probs = keras.layers.Activation("sigmoid", dtype="float32", name="probabilities")(head(backbone(mel)))
    return keras.Model(mel, probs, name="body")


def _timed_steps(step, *, steps: int, warmup: int, batch: int, sync=lambda: None) -> dict:
    losses = []
    for _ in range(warmup):  # tracing / autotuning / first-touch allocations
        step()
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        losses.append(step())
    sync()
    out = _rate(steps * batch, time.perf_counter() - t0, time.process_time() - c0)
    out["losses"] = [round(float(v), 5) for v in losses]
    return out


def keras_step(name: str, args: argparse.Namespace) -> dict:
    """The compiled paper model (or its body) on one fixed random batch, ``args.steps`` steps."""
    import keras
    import numpy as np

    precision = "mixed_bfloat16" if "bf16" in name else None
    cfg = _paper_cfg(precision, [f"training.batch_size={args.batch}"])
    rng = np.random.default_rng(0)
    y = (rng.random((args.batch, 15)) < 0.3).astype(np.float32)
    keras.utils.set_random_seed(0)
    if "body" in name:
        from keras_inst.models.optimizers import build_optimizer

        model = body_model(cfg)
        model.compile(optimizer=build_optimizer(cfg, model), loss=keras.losses.BinaryCrossentropy())
        x = (-30.0 + 15.0 * rng.standard_normal((args.batch, *model.input.shape[1:]))).astype(np.float32)
    else:
        from keras_inst.training.train import build_compiled_model

        model = build_compiled_model(cfg)
        x = (0.1 * rng.standard_normal((args.batch, cfg.audio.chunk_samples))).astype(np.float32)
    # Keras leaves XLA off on CPU-only machines ("auto"); *_xla turns it on for the step.
    model.jit_compile = name.endswith("_xla")
    out = _timed_steps(lambda: model.train_on_batch(x, y, return_dict=True)["loss"],
                       steps=args.steps, warmup=2, batch=args.batch)
    backbone = model.get_layer("backbone")
    out["mel_shape"] = list(backbone.input.shape[1:])
    out["params"] = int(model.count_params())
    return out


def torch_steps(*, device: str, batches: tuple[int, ...], precisions: tuple[str, ...], steps: int,
                warmup: int, mel_shape: tuple[int, int], channels_last: bool = False) -> dict:
    """The PyTorch reference, Adam per group (scratch: one rate), BCE on logits, per batch size."""
    import torch

    from keras_inst.models.torch_reference import ShortChunkCNN

    torch.backends.cudnn.benchmark = device == "cuda"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    results = {}
    for batch in batches:
        for precision in precisions:
            torch.manual_seed(0)
            net = ShortChunkCNN(n_channels=128, n_class=15).to(device).train()
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            net = net.to(memory_format=fmt)
            opt = torch.optim.Adam([{"params": net.head_parameters(), "lr": 1e-2},
                                    {"params": net.backbone_parameters(), "lr": 1e-2}])
            gen = torch.Generator().manual_seed(0)
            x = (-30.0 + 15.0 * torch.randn(batch, 1, *mel_shape, generator=gen)).to(device).contiguous(memory_format=fmt)
            y = (torch.rand(batch, 15, generator=gen) < 0.3).float().to(device)
            loss_fn = torch.nn.BCEWithLogitsLoss()

            def step(net=net, opt=opt, x=x, y=y, loss_fn=loss_fn, precision=precision):
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    logits = net.logits(x)
                loss = loss_fn(logits.float(), y)
                loss.backward()
                opt.step()
                return loss.detach()

            r = _timed_steps(step, steps=steps, warmup=warmup, batch=batch, sync=sync)
            results[f"{precision}_b{batch}"] = r
    return results


def fit_rate(name: str, args: argparse.Namespace) -> dict:
    """``model.fit`` on the real training stream; epoch 1 (tracing, pipeline start) is not timed.
    ``*_effects_in_step``: ``training.effects_in=train_step`` (the step mixes raw batches)."""
    import keras

    from keras_inst.data.pipeline import build_data
    from keras_inst.training.step_effects import prepare_fit
    from keras_inst.training.train import build_compiled_model

    precision = "mixed_bfloat16" if "bf16" in name else None
    cfg = _paper_cfg(precision, _data_sets(args, in_step=name.endswith("_effects_in_step")))
    data = build_data(cfg, progress=False)
    model = build_compiled_model(cfg)
    prepare_fit(model, cfg)
    marks: list[tuple[float, float]] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append((time.perf_counter(), time.process_time()))

        def on_epoch_end(self, epoch, logs=None):
            marks.append((time.perf_counter(), time.process_time()))

    model.fit(data.train, steps_per_epoch=args.fit_steps, epochs=2, verbose=0, callbacks=[Clock()])
    (w0, c0), (w1, c1) = marks[2], marks[3]
    return {**_rate(args.fit_steps * args.batch, w1 - w0, c1 - c0), "steps": args.fit_steps,
            "songs": data.sampler.table.num_songs}


def pipeline_rate(args: argparse.Namespace, *, in_step: bool = False) -> dict:
    """The training stream alone, as ``fit`` gets it (``keras_inst.data.pipeline`` defaults);
    ``in_step``: the raw stream of ``training.effects_in=train_step`` (draws and reads only)."""
    from keras_inst.data.pipeline import build_data

    cfg = _paper_cfg(None, _data_sets(args, in_step=in_step))
    data = build_data(cfg, progress=False)
    it = iter(data.train)
    for _ in range(3):
        next(it)
    batches = 4 * args.fit_steps
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    out = _rate(batches * args.batch, time.perf_counter() - t0, time.process_time() - c0)
    del it  # an iterator alive at interpreter exit can hang TensorFlow (docs/benchmarks.md)
    return out


def _mixdown_on(mixer, batches: list, args: argparse.Namespace) -> dict:
    count = iter(range(10**9))
    r = _timed_steps(lambda: mixer(batches[next(count) % len(batches)])[0, 0],
                     steps=4 * args.fit_steps, warmup=2, batch=args.batch,
                     sync=lambda: mixer(batches[0]).numpy())
    r.pop("losses")
    return r


def mixdown_rates(args: argparse.Namespace) -> dict:
    """The effects and mixdown of ``training.effects_in=train_step`` alone, compiled, on each
    device found (its raw batches drawn beforehand and placed on the device)."""
    import tensorflow as tf

    from keras_inst.data.pipeline import build_data, step_mixer

    cfg = _paper_cfg(None, _data_sets(args, in_step=True))
    data = build_data(cfg, progress=False)
    raws = [r for r, _ in data.train.take(4)]
    mixer = tf.function(step_mixer(cfg))
    out = {}
    for dev in tf.config.list_logical_devices():
        if dev.device_type not in ("CPU", "GPU"):
            continue
        with tf.device(dev.name):
            on_dev = [tf.nest.map_structure(tf.identity, r) for r in raws]
            out[dev.name] = _mixdown_on(mixer, on_dev, args)
    return out


def _data_sets(args: argparse.Namespace, *, in_step: bool = False) -> list[str]:
    return ["data.datasets=[rendered]", f"data.roots.rendered={args.root}",
            f"data.cache_dir={args.cache_dir}", f"training.batch_size={args.batch}",
            f"training.effects_in={'train_step' if in_step else 'pipeline'}"]


def run_variant(name: str, args: argparse.Namespace) -> dict:
    name = name.removesuffix("_malloc")  # the allocator is set in the environment (_subprocess)
    if name in KERAS_STEPS:
        return keras_step(name, args)
    if name in TORCH_STEPS:
        precision = "bf16" if "bf16" in name else "fp32"
        r = torch_steps(device="cpu", batches=(args.batch,), precisions=(precision,), steps=args.steps,
                        warmup=2, mel_shape=tuple(args.mel_shape))
        return r[f"{precision}_b{args.batch}"]
    if name.startswith("fit_"):
        return fit_rate(name, args)
    if name in ("pipeline", "pipeline_raw"):
        return pipeline_rate(args, in_step=name == "pipeline_raw")
    if name == "mixdown":
        return mixdown_rates(args)
    if name.startswith("gpu_keras_jax"):
        return keras_jax_steps(args)
    raise ValueError(f"unknown variant {name!r}; known: {', '.join(CPU_VARIANTS)}")


def _subprocess(name: str, args: argparse.Namespace, env: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, __file__, "--variant", name, "--json-variant", str(out),
               "--steps", str(args.steps), "--batch", str(args.batch), "--root", args.root,
               "--cache-dir", args.cache_dir, "--fit-steps", str(args.fit_steps),
               "--mel-shape", *map(str, args.mel_shape), "--body", args.body,
               "--gpu-batches", *map(str, args.gpu_batches)]
        full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            return {"error": proc.stderr.strip().splitlines()[-3:] or ["failed"]}
        result = json.loads(out.read_text())
    result["process_seconds"] = round(time.perf_counter() - t0, 1)
    return result


def _median_run(runs: list[dict]) -> dict:
    """The run with the median rate, with every run's rate beside it (the range)."""
    ok = sorted((r for r in runs if "examples_per_s" in r), key=lambda r: r["examples_per_s"])
    if not ok:
        return runs[-1]
    return {**ok[(len(ok) - 1) // 2], "examples_per_s_runs": [r["examples_per_s"] for r in ok]}


def _ratio(a: dict, b: dict) -> float | None:
    if "examples_per_s" in a and "examples_per_s" in b:
        return round(a["examples_per_s"] / b["examples_per_s"], 2)
    return None


def cpu_main(args: argparse.Namespace) -> dict:
    if not Path(args.root).is_dir() and not set(args.only) <= {*KERAS_STEPS, *KERAS_MALLOC, *TORCH_STEPS}:
        from keras_inst.corpus.render import render_corpus

        print(f"{args.root} not found: rendering {args.render_songs} songs there", file=sys.stderr)
        render_corpus(args.root, songs=args.render_songs, seed=0, sample_rate=16000, progress=False)
    runs: dict[str, list[dict]] = {name: [] for name in args.only}
    for _ in range(args.repeat):  # round robin: a change of machine load hits every variant
        for name in args.only:
            env = MALLOC_ENV if name.endswith("_malloc") else None
            r = _subprocess(name, args, env)
            runs[name].append(r)
            if "mel_shape" in r:
                args.mel_shape = r["mel_shape"]  # the torch reference gets the same input
            print(f"{name}: {r.get('examples_per_s', r)}", file=sys.stderr)
    res: dict = {name: _median_run(rs) for name, rs in runs.items()}
    torch_best = max((res[n] for n in TORCH_STEPS if "examples_per_s" in res.get(n, {})),
                     key=lambda r: r["examples_per_s"], default={})
    res["torch_best"] = next((n for n in TORCH_STEPS if res.get(n) is torch_best), None)
    res["ratios"] = {f"{k}_vs_torch_best": _ratio(res.get(k, {}), torch_best) for k in (*KERAS_STEPS, *KERAS_MALLOC)}
    # per CPU second: less sensitive to what else the (shared) machine runs
    res["ratios_per_cpu_s"] = {f"{k}_vs_torch_best": round(torch_best["cpu_ms_per_example"] / res[k]["cpu_ms_per_example"], 2)
                               for k in (*KERAS_STEPS, *KERAS_MALLOC) if "cpu_ms_per_example" in res.get(k, {}) and torch_best}
    res["ratios"]["fit_bf16_vs_keras_bf16_step"] = _ratio(res.get("fit_bf16", {}), res.get("keras_bf16", {}))
    pipe = res.get("pipeline", {})
    if "cpu_ms_per_example" in pipe:
        res["pipeline_16_cores_examples_per_s"] = round(16 * 1e3 / pipe["cpu_ms_per_example"], 1)
    raw = res.get("pipeline_raw", {})  # training.effects_in=train_step: draws and reads only
    if "cpu_ms_per_example" in raw:
        res["pipeline_raw_16_cores_examples_per_s"] = round(16 * 1e3 / raw["cpu_ms_per_example"], 1)
    return res


def keras_jax_steps(args: argparse.Namespace) -> dict:
    """Backbone + head in Keras on JAX (GPU machine), from the JSON of ``--export-body``."""
    import keras
    import numpy as np

    out = {"backend": keras.backend.backend(), "devices": [str(d) for d in __import__("jax").devices()]}
    for precision in ("float32", "mixed_bfloat16"):
        model_json = (Path(args.body) / f"body_{precision}.json").read_text()
        for batch in args.gpu_batches:
            keras.utils.set_random_seed(0)
            model = keras.models.model_from_json(model_json)
            model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", jit_compile=True)
            rng = np.random.default_rng(0)
            x = (-30.0 + 15.0 * rng.standard_normal((batch, *model.input.shape[1:]))).astype(np.float32)
            y = (rng.random((batch, 15)) < 0.3).astype(np.float32)
            t0 = time.perf_counter()
            try:  # a batch too large for the device must not lose the other results
                model.train_on_batch(x, y)
            except Exception as e:  # noqa: BLE001 (XLA raises its own runtime errors)
                out[f"{precision}_b{batch}"] = {"error": str(e).splitlines()[0][:300]}
                continue
            compile_s = time.perf_counter() - t0
            # train_on_batch returns the loss as a Python float: each step waits for the device.
            r = _timed_steps(lambda m=model, x=x, y=y: m.train_on_batch(x, y), steps=args.steps, warmup=2, batch=batch)
            r["first_step_seconds"] = round(compile_s, 1)
            out[f"{precision}_b{batch}"] = r
    return out


def export_body(folder: str) -> None:
    """Write the body model's Keras JSON per precision policy (the policy is stored per layer)."""
    import keras

    Path(folder).mkdir(parents=True, exist_ok=True)
    from keras_inst.atomic import write_json, write_text

    for precision in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(precision)
        cfg = _paper_cfg(None)
        model = body_model(cfg)
        write_text(Path(folder) / f"body_{precision}.json", model.to_json())
    write_json(Path(folder) / "meta.json", {"mel_shape": list(model.input.shape[1:]), "params": int(model.count_params())})


def gpu_main(args: argparse.Namespace) -> dict:
    import torch

    meta = json.loads((Path(args.body) / "meta.json").read_text())
    on_gpu = args.device == "cuda"
    res: dict = {"device": torch.cuda.get_device_name(0) if on_gpu else args.device, "torch_version": torch.__version__,
                 "mel_shape": meta["mel_shape"], "batches": args.gpu_batches}
    kw = dict(device=args.device, batches=tuple(args.gpu_batches), precisions=("fp32", "bf16"), steps=args.steps, warmup=5,
              mel_shape=tuple(meta["mel_shape"]))
    if "torch" in args.gpu_parts:
        res["torch"] = torch_steps(**kw)
        res["torch_channels_last"] = torch_steps(**kw, channels_last=True)
        torch.cuda.empty_cache()  # leave the device's memory to the JAX process
    if "keras_jax" in args.gpu_parts:
        env = {"KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
        res["keras_jax"] = _subprocess("gpu_keras_jax", args, env)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=list(CPU_VARIANTS), help="CPU variants to run")
    p.add_argument("--steps", type=int, default=8, help="timed training steps per variant")
    p.add_argument("--repeat", type=int, default=1, help="runs of each variant (round robin); median reported")
    p.add_argument("--batch", type=int, default=16, help="batch size (CPU mode)")
    p.add_argument("--fit-steps", type=int, default=8, help="timed fit steps (epoch 2 of 2)")
    p.add_argument("--root", default="/tmp/rendered_bench", help="rendered corpus for fit/pipeline")
    p.add_argument("--render-songs", type=int, default=20, help="songs to render if --root is absent")
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "keras_inst_bench_cache"))
    p.add_argument("--mel-shape", type=int, nargs=2, default=[128, 251], help=argparse.SUPPRESS)
    p.add_argument("--gpu", action="store_true", help="GPU mode: PyTorch on cuda, Keras on JAX")
    p.add_argument("--device", default="cuda", help="GPU mode's torch device (cpu: a dry run)")
    p.add_argument("--gpu-batches", type=int, nargs="+", default=list(GPU_BATCHES), help="GPU mode's batch sizes")
    p.add_argument("--gpu-parts", nargs="+", choices=("torch", "keras_jax"), default=["torch", "keras_jax"])
    p.add_argument("--body", default=".bench", help="folder of --export-body's JSON (GPU mode)")
    p.add_argument("--export-body", metavar="DIR", help="write the body model JSON for --gpu and exit")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--json-variant", help=argparse.SUPPRESS)
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    if args.export_body:
        export_body(args.export_body)
        return 0
    if args.variant:
        from keras_inst.atomic import write_json

        write_json(args.json_variant, run_variant(args.variant, args))
        return 0
    t0 = time.time()
    result = gpu_main(args) if args.gpu else cpu_main(args)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "python": platform.python_version(), "load_average_end": os.getloadavg(),
                         "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(t0))}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        from keras_inst.atomic import write_text

        write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
