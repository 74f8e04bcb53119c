"""Render a few seconds of each built-in engine setting to WAV files, for listening.

    python scripts/listen_sources.py --out /tmp/listen [--seeds 3] [--sample-rate 22050]

Writes ``synth_<role>_<seed>.wav`` (a phrase per synth role), ``synth_gm<program>_<seed>.wav``
(a few GM synth programs), ``drums_<style>_<seed>.wav`` (drum-machine kits playing the corpus's
grooves) and ``amp_<seed>_<kind>.wav`` (TimGM6mb's clean electric guitar through drawn amps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _phrase(role: str) -> list[tuple[float, float, int, int]]:
    """A short part in the role's register: chords for pads, a line for the rest (C minor)."""
    if role == "pad":
        return [(i * 2.0, 1.9, k + 12 * (i % 2), 90) for i in range(2) for k in (48, 51, 55, 58)]
    base, step = {"bass": (36, 0.25), "lead": (67, 0.5), "pluck": (60, 0.25), "arp": (60, 0.125)}[role]
    scale = (0, 3, 5, 7, 10, 12, 10, 7)
    n = int(4.0 / step)
    legato = 1.05 if role in ("lead", "bass") else 0.6
    return [(i * step, step * legato, base + scale[i % 8], 70 + 40 * (i % 4 == 0)) for i in range(n)]


def main(argv: list[str] | None = None) -> None:
    import soundfile as sf

    from keras_inst.corpus.amp import apply_amp, draw_amp
    from keras_inst.corpus.drum_machine import play_drum_machine
    from keras_inst.corpus.drums import drum_part
    from keras_inst.corpus.synth import default_soundfont, synthesize
    from keras_inst.corpus.synthesizer import ROLES, draw_patch, play_synth, render

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sample-rate", type=int, default=22050)
    args = ap.parse_args(argv)
    sr, n = args.sample_rate, int(5.0 * args.sample_rate)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in range(args.seeds):
        for role in ROLES:
            rng = np.random.default_rng([seed, 7])
            patch = draw_patch(role, rng)
            sf.write(args.out / f"synth_{role}_{seed}.wav", render(_phrase(role), patch, sample_rate=sr, n_samples=n,
                                                                    rng=rng), sr)
        for program, role in ((38, "bass"), (81, "lead"), (89, "pad"), (98, "pluck")):
            audio, _ = play_synth(_phrase(role), program=program, sample_rate=sr, n_samples=n, seed=seed)
            sf.write(args.out / f"synth_gm{program}_{seed}.wav", audio, sr)
        for style in ("dance", "funk", "rock"):
            hits = drum_part(style, start_q=0.0, n_bars=2, bar_q=4.0, beat_q=1.0, rng=np.random.default_rng(seed))
            audio, _ = play_drum_machine([(q * 0.5, d * 0.5, k, v) for q, d, k, v in hits], sample_rate=sr,
                                         n_samples=n, seed=seed)
            sf.write(args.out / f"drums_{style}_{seed}.wav", audio, sr)
        guitar, _ = synthesize(_phrase("lead"), program=27, soundfont=default_soundfont(), sample_rate=sr, n_samples=n)
        settings = draw_amp(np.random.default_rng(seed))
        sf.write(args.out / f"amp_{seed}_{settings.name.split()[1]}.wav", apply_amp(guitar, settings, sr), sr)
    print(f"wrote {len(list(args.out.glob('*.wav')))} files to {args.out}")


if __name__ == "__main__":
    main()
