"""Inference speed of the paper model in every exported form; prints JSON.

    python scripts/bench_inference.py [--config paper] [--minutes 10] [--repeats 30]
    python scripts/bench_inference.py --export EXPORT_DIR [--repeats 30]

``--export``: the TFLite models of an existing export directory instead (e.g. the main job's,
whose int8 speed depends on its architecture): latency per window with 1 thread and all cores,
and int8's speed-up over float32 (each row says whether the artifact passed its export check).
With ``--alternate`` they (and any ``--also NAME=FILE.tflite``, e.g. an earlier int8 file) are
loaded in ONE process per thread count and called in turn, so a change in the machine's load
hits every model alike: the way to compare two int8 files on a shared machine.

For Keras, the SavedModel and TFLite float32 / float16 / int8 (the paper model, random
weights: speed does not depend on them) it measures

* latency per 4-second window (batch 1; median and 90th percentile of ``--repeats`` calls after
  3 warm-up calls) with 1 thread and with all cores;
* the real-time factor of ``keras_inst.deploy.predict`` on one long file (``--minutes`` of synthetic
  44.1 kHz stereo 16-bit WAV: decoding, downmix, resampling to 16 kHz, non-overlapping windows
  ``--hop 4``, batches of 16) with all cores.

Each measurement runs in a fresh subprocess (TensorFlow's thread pools can only be sized before
its first op, and runs must not share warm caches). The machine's load average is recorded
because the figures are only comparable on an otherwise idle machine.
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

import numpy as np

FORMS = ("keras", "saved_model", "tflite", "tflite_fp16", "tflite_int8")
FILES = {
    "keras": "model.keras",
    "saved_model": "export/saved_model",
    "tflite": "export/model_float32.tflite",
    "tflite_fp16": "export/model_float16.tflite",
    "tflite_int8": "export/model_int8.tflite",
}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _runner(form: str, path: Path, threads: int, batch_size: int):
    """(classifier for keras_inst.deploy.predict, raw batch -> probabilities function)."""
    from keras_inst.runtime.loader import load_artifact

    if form in ("keras", "saved_model"):
        import tensorflow as tf

        # Must happen before TensorFlow runs its first op.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    clf = load_artifact(path, num_threads=threads, batch_size=batch_size)
    return clf, clf.predict


def worker(args: argparse.Namespace) -> dict:
    from keras_inst.deploy.predict import analyse_file

    work = Path(args.workdir)
    t0 = time.perf_counter()
    clf, predict = _runner(args.worker, Path(args.path) if args.path else work / FILES[args.worker], args.threads, 16)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((1, clf.input_samples))).astype(np.float32)
    for _ in range(3):
        predict(x)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - t)
    out = {
        "form": args.worker,
        "threads": args.threads,
        "load_seconds": round(load_s, 2),
        "latency_ms_median": round(1e3 * float(np.median(times)), 2),
        "latency_ms_p90": round(1e3 * float(np.percentile(times, 90)), 2),
        "latency_ms_min": round(1e3 * float(np.min(times)), 2),
        "runs": args.repeats,
    }
    if args.long_file:
        from keras_inst.deploy.audio_io import load_audio

        path = Path(args.long_file)
        import scipy.signal  # noqa: F401  (a one-time import of ~0.5-1.5 s; not decoding time)

        t = time.perf_counter()
        audio = load_audio(path, sample_rate=clf.sample_rate)
        decode_s = time.perf_counter() - t
        t = time.perf_counter()
        res = analyse_file(clf, path, hop_seconds=4.0, thresholds=np.full(len(clf.class_names), 0.5))
        total_s = time.perf_counter() - t
        out["long_file"] = {
            "audio_seconds": round(audio.duration, 1),
            "windows": res["windows"],
            "decode_resample_seconds": round(decode_s, 2),
            "total_seconds": round(total_s, 2),
            "real_time_factor": round(audio.duration / total_s, 1),
        }
    return out


def prepare(work: Path, *, config: str, minutes: float) -> dict:
    """Paper model (random init) saved as .keras and exported in every format; a long WAV."""
    import keras
    import soundfile as sf

    from keras_inst.config.io import load_config
    from keras_inst.deploy.audio_io import synthetic_mixes
    from keras_inst.deploy.export import export_model
    from keras_inst.models.short_chunk import build_model

    keras.utils.set_random_seed(0)
    cfg = load_config(config)
    model = build_model(cfg)
    model.save(work / "model.keras")
    t = time.perf_counter()
    manifest = export_model(model, work / "export", check_inputs=synthetic_mixes(32, samples=cfg.audio.chunk_samples, sample_rate=cfg.audio.sample_rate, seed=1))
    export_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    sr = 44100
    n = int(minutes * 60 * sr)
    t_ax = np.arange(n) / sr
    left = 0.2 * np.sin(2 * np.pi * 220.0 * t_ax) + 0.05 * rng.standard_normal(n)
    right = 0.2 * np.sin(2 * np.pi * 330.0 * t_ax) + 0.05 * rng.standard_normal(n)
    sf.write(work / "long.wav", np.stack([left, right], axis=1).astype(np.float32), sr, subtype="PCM_16")
    return {
        "export_seconds": round(export_s, 1),
        "checks": {f: a["probabilities_max_abs_diff"] for f, a in manifest["artifacts"].items()},
        "sizes_mb": {f: round(a["bytes"] / 1e6, 2) for f, a in manifest["artifacts"].items()},
        "all_checks_passed": manifest["all_checks_passed"],
    }


def bench_export(export: Path, *, repeats: int) -> dict:
    """Latency per window of every TFLite model in ``export``, and int8's speed-up over float32."""
    from keras_inst.runtime.artifacts import EXPORT_JSON
    from keras_inst.runtime.lite import default_num_threads

    meta = json.loads((export / EXPORT_JSON).read_text())
    cores = default_num_threads()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    rows = []
    for form, art in meta["artifacts"].items():
        if not form.startswith("tflite"):
            continue
        for threads in sorted({1, cores}):
            cmd = [sys.executable, __file__, "--worker", form, "--threads", str(threads), "--workdir", str(export),
                   "--path", str(export / art["path"]), "--repeats", str(repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"worker {form}/{threads} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]) | {"passed_export_check": art["passed"]})
    ms = {(r["form"], r["threads"]): r["latency_ms_median"] for r in rows}
    speedup = {f"{t}_threads": round(ms[("tflite", t)] / ms[("tflite_int8", t)], 2)
               for t in sorted({1, cores}) if ("tflite", t) in ms and ("tflite_int8", t) in ms}
    return {"export": str(export), "source": meta.get("source"), "window_seconds": meta["input_seconds"],
            "machine": {"cpu": _cpu_name(), "cores": cores, "load_average": [round(v, 2) for v in os.getloadavg()]},
            "results": rows, "int8_speedup_vs_float32": speedup,
            "int8_activations": (meta.get("int8") or {}).get("activations")}  # full-integer or dynamic-range


def bench_alternating(export: Path, *, repeats: int, also: dict[str, Path]) -> dict:
    """Median latency per window (batch 1) of the export's TFLite models and ``also``, called in
    turn in this process (``repeats`` rounds after 3 warm-up calls each), with 1 thread and all
    cores; speed-ups of every int8 model over float32; the load average before and after."""
    from keras_inst.runtime.artifacts import EXPORT_JSON
    from keras_inst.runtime.lite import LiteClassifier, default_num_threads

    meta = json.loads((export / EXPORT_JSON).read_text())
    files = {form: export / art["path"] for form, art in meta["artifacts"].items() if form.startswith("tflite")}
    files.update(also)
    cores, out = default_num_threads(), {}
    for threads in sorted({1, cores}):
        models = {name: LiteClassifier(path, num_threads=threads, batch_size=1) for name, path in files.items()}
        x = (0.1 * np.random.default_rng(0).standard_normal((1, meta["input_samples"]))).astype(np.float32)
        for m in models.values():
            for _ in range(3):
                m.predict(x)
        times: dict[str, list[float]] = {name: [] for name in models}
        load = os.getloadavg()[0]
        for _ in range(repeats):
            for name, m in models.items():
                t = time.perf_counter()
                m.predict(x)
                times[name].append(time.perf_counter() - t)
        ms = {name: round(1e3 * float(np.median(v)), 2) for name, v in times.items()}
        speedup = {name: round(ms["tflite"] / v, 2) for name, v in ms.items() if "int8" in name and "tflite" in ms}
        out[f"{threads}_threads"] = {"latency_ms_median": ms, "speedup_vs_float32": speedup,
                                     "load_average_before_after": [round(load, 2), round(os.getloadavg()[0], 2)]}
    return {"export": str(export), "source": meta.get("source"), "window_seconds": meta["input_seconds"],
            "files": {k: str(v) for k, v in files.items()}, "bytes": {k: v.stat().st_size for k, v in files.items()},
            "machine": {"cpu": _cpu_name(), "cores": cores}, "runs": repeats, "alternating": out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="paper")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the long synthetic file")
    p.add_argument("--repeats", type=int, default=30, help="timed single-window calls per setting")
    p.add_argument("--forms", default=",".join(FORMS))
    p.add_argument("--workdir", default=None, help="reuse/keep the exported models here (default: temporary)")
    p.add_argument("--worker", choices=FORMS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--long-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--path", default=None, help=argparse.SUPPRESS)
    p.add_argument("--export", default=None, help="benchmark the TFLite models of this export directory")
    p.add_argument("--alternate", action="store_true", help="with --export: all models in one process, called in turn")
    p.add_argument("--also", action="append", default=[], metavar="NAME=FILE",
                   help="with --alternate: another .tflite file to time beside the export's (repeatable)")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.export and args.alternate:
        also = dict(a.split("=", 1) for a in args.also)
        print(json.dumps(bench_alternating(Path(args.export), repeats=args.repeats,
                                           also={k: Path(v) for k, v in also.items()}), indent=2))
        return 0
    if args.export:
        print(json.dumps(bench_export(Path(args.export), repeats=args.repeats), indent=2))
        return 0

    from keras_inst.runtime.lite import default_num_threads

    cores = default_num_threads()
    forms = [f for f in args.forms.split(",") if f]
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_inference_")
        work = Path(tmp.name)
    else:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "command": "python scripts/bench_inference.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu": _cpu_name(), "cores": cores, "load_average_start": [round(v, 2) for v in os.getloadavg()]},
        "model": f"configs/{args.config}.yaml, random init",
        "window_seconds": None,
    }
    if not (work / "export" / "export.json").is_file():
        result["prepare"] = prepare(work, config=args.config, minutes=args.minutes)
    meta = json.loads((work / "export" / "export.json").read_text())
    result["window_seconds"] = meta["input_seconds"]
    result["versions"] = meta["versions"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    rows = []
    for form in forms:
        for threads in sorted({1, cores}):
            cmd = [sys.executable, __file__, "--worker", form, "--threads", str(threads), "--workdir", str(work), "--repeats", str(args.repeats)]
            if threads == cores:
                cmd += ["--long-file", str(work / "long.wav")]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"worker {form}/{threads} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    result["results"] = rows
    result["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    int8_1 = next((r for r in rows if r["form"] == "tflite_int8" and r["threads"] == 1), None)
    int8_all = next((r for r in rows if r["form"] == "tflite_int8" and "long_file" in r), None)
    result["targets"] = {
        "tflite_int8_1_thread_ms_per_window<=16": None if int8_1 is None else int8_1["latency_ms_median"] <= 16.0,
        "long_file_real_time_factor>=200 (tflite_int8, hop 4 s, all cores)": None if int8_all is None else int8_all["long_file"]["real_time_factor"] >= 200,
    }
    print(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
