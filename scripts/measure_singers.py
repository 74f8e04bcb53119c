"""How much does each singer source sound like singing to a tagger trained on real music?

Renders the same seeded sung-range melodies (random walks over keys 55..74, notes 0.25..0.9 s)
on every installed source of GM 53 "Voice Oohs" and 52 "Choir Aahs" (and, as non-vocal
references, violin, flute and clarinet on FluidR3), normalises each to -20 LUFS and runs
musicnn's ``MTT_vgg`` tagger (MagnaTagATune, real recordings; its original TF1 graph via
:func:`keras_inst.models.musicnn.musicnn_reference_outputs`) on 3 s patches. Prints one JSON
object: per rendering, the mean probability of MTT's vocal tags, of its "no vocal(s)/voice"
tags, and its five top tags. Needs musicnn's weights (``pip download``ed on first use).

    python scripts/measure_singers.py [--melodies 6] [--seconds 12] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals",
    "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft",
    "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal",
    "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
]  # musicnn/configuration.py
VOCAL = ("vocal", "vocals", "singing", "voice", "female", "male", "woman", "man", "opera", "choir", "choral",
         "male vocal", "female vocal", "male voice", "female voice")
NO_VOCAL = ("no vocals", "no vocal", "no voice")
SR = 16000


def melody(seed: int, seconds: float) -> list[tuple[float, float, int, int]]:
    """A seeded sung-range melody: (onset_s, duration_s, key, velocity)."""
    rng = np.random.default_rng([seed, 53])
    t, key, out = 0.2, int(rng.integers(58, 70)), []
    while t < seconds - 1.0:
        dur = float(rng.choice([0.25, 0.4, 0.6, 0.9]))
        key = int(np.clip(key + rng.choice([-4, -2, -1, 0, 1, 2, 3, 5]), 55, 74))
        out.append((t, dur * 0.95, key, int(rng.integers(70, 100))))
        t += dur
    return out


def patches(x: np.ndarray) -> np.ndarray:
    """musicnn's front end: log10(10000 mel + 1), cut into 187-frame patches [P, 187, 96]."""
    import librosa

    mel = librosa.feature.melspectrogram(y=x, sr=SR, hop_length=256, n_fft=512, n_mels=96).T  # [frames, 96]
    lm = np.log10(10000 * mel + 1).astype(np.float32)
    n = len(lm) // 187
    return lm[: n * 187].reshape(n, 187, 96)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--melodies", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from keras_inst.corpus.gains import velocity_gains
    from keras_inst.corpus.sources import discover, play
    from keras_inst.corpus.synth import integrated_loudness
    from keras_inst.models.musicnn import fetch_musicnn, musicnn_reference_outputs

    ckpt = fetch_musicnn() / "MTT_vgg"
    found = discover(complete=False)
    runs = [(s, p) for p in (53, 52) for s in found.available if p in s.programs]
    runs += [(s, p) for p in (40, 73, 71) for s in found.available if s.name == "fluidr3_gm"]
    n = int(args.seconds * SR)
    result = {}
    for src, prog in runs:
        probs = []
        for m in range(args.melodies):
            x, _ = play(src, found.paths[src.name], melody(m, args.seconds), program=prog, sample_rate=SR,
                        n_samples=n, seed=m, velocity_gains=velocity_gains(src.name, prog))
            x = x * 10 ** ((-20.0 - integrated_loudness(x, SR)) / 20)
            logits = musicnn_reference_outputs(ckpt, patches(x), outputs=("logits",))["logits"]
            probs.append(1 / (1 + np.exp(-logits)))
        p = np.concatenate(probs).mean(axis=0)  # [50]
        idx = {t: i for i, t in enumerate(MTT_LABELS)}
        result[f"{src.name}/{prog}"] = {
            "vocal_tags": round(float(np.mean([p[idx[t]] for t in VOCAL])), 4),
            "no_vocal_tags": round(float(np.mean([p[idx[t]] for t in NO_VOCAL])), 4),
            "singing": round(float(p[idx["singing"]]), 4),
            "top5": [MTT_LABELS[i] for i in np.argsort(-p)[:5]],
        }
        print(src.name, prog, result[f"{src.name}/{prog}"], file=sys.stderr)
    text = json.dumps(result, indent=1)
    if args.out:
        from keras_inst.atomic import write_text

        write_text(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
