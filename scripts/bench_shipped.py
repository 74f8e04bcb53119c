"""Time to a first answer with the shipped model: ``keras-inst predict SONG`` end to end; prints JSON.

    python scripts/bench_shipped.py [--model SHIPPED_FOLDER] [--seconds 180] [--repeats 3]

Issue K's targets (docs/deploying.md, "The shipped model"): a 3-minute song analysed in <= 10 s
on 2 cores with the README's install, <= 5 s TF-free with the int8 model. Each row is one fresh
``keras-inst predict`` process (interpreter start, imports, model load with its sha256 checks,
decoding, resampling, windows every 2 s, the answer) on a synthetic 44.1 kHz stereo 16-bit WAV of
``--seconds``: the shipped float16 and int8 TFLite models, and the float16 one with TensorFlow and
Keras made unimportable (the lite install). The median of ``--repeats`` runs is reported with the
load average, since the figures only compare on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from keras_inst.runtime.tf_free import run_python


def song(path: Path, seconds: float) -> None:
    """A synthetic 44.1 kHz stereo 16-bit WAV of tone/noise mixes (keras_inst.deploy.audio_io)."""
    from keras_inst.deploy.audio_io import synthetic_mixes

    sr = 44100
    n = int(np.ceil(seconds / 4))
    x = synthetic_mixes(n, samples=4 * sr, sample_rate=sr, seed=0).reshape(-1)[: int(seconds * sr)]
    sf.write(path, np.stack([x, 0.9 * x], axis=1), sr, subtype="PCM_16")


def run_once(wav: Path, *, model: str | None, variant: str, tf_free: bool) -> float:
    args = [str(wav), "--variant", variant, "--format", "json", "--output", os.devnull, "--no-progress"]
    if model:
        args += ["--model", model]
    code = f"from keras_inst.deploy.predict import main\nraise SystemExit(main({args!r}))"
    t0 = time.perf_counter()
    proc = run_python(code, tf_free=tf_free)
    if proc.returncode != 0:
        raise SystemExit(f"predict failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a shipped folder (default: the installed one)")
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "song.wav"
        song(wav, args.seconds)
        for name, variant, tf_free in (("float16", "tflite_fp16", False), ("int8", "tflite_int8", False),
                                       ("float16_tf_free", "tflite_fp16", True), ("int8_tf_free", "tflite_int8", True)):
            times = [run_once(wav, model=args.model, variant=variant, tf_free=tf_free) for _ in range(args.repeats)]
            rows[name] = {"median_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times]}
    print(json.dumps({"song_seconds": args.seconds, "cores": len(os.sched_getaffinity(0)),
                      "load_average": os.getloadavg(), "predict_end_to_end": rows}, indent=2))


if __name__ == "__main__":
    main()
