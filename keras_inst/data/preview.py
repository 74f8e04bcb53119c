"""Listen to the training data: ``python -m keras_inst.data preview --config demo --n 8 --out DIR``.

Writes the first ``n`` examples of the training stream of seed ``--seed`` (with ``--seed`` equal
to ``training.seed`` they are exactly the run's first training examples), made by the training
pipeline itself (:func:`keras_inst.data.pipeline.training_dataset`, so what you hear is what the
model is trained on): per example a 16-bit WAV, a log-mel PNG (the model's own front end) and a
JSON sidecar with the labels and every source (dataset, song, stem, raw labels, chunk start,
audible or not, effects and their parameters) and the ambience bed under the mix, if any
(``effects.ambience``: texture, SNR; a *negative* example is a bed alone, every label 0);
``index.md`` lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst import atomic
from keras_inst.config.schema import AMBIENCE_TEXTURES, ExperimentConfig
from keras_inst.taxonomy import CLASSES


def describe_effects(params: Any, i: int, j: int) -> dict[str, Any]:
    """The effects of source ``j`` of example ``i`` (``params`` fields are numpy ``[B, N]``)."""
    def v(name: str) -> float:
        return float(getattr(params, name)[i, j])

    fx: dict[str, Any] = {}
    if v("gain_db") != 0.0:
        fx["gain"] = {"db": round(v("gain_db"), 3)}
    if v("low_shelf_db") != 0.0:
        fx["low_shelf"] = {"hz": round(v("low_shelf_hz"), 1), "db": round(v("low_shelf_db"), 3)}
    if v("high_shelf_db") != 0.0:
        fx["high_shelf"] = {"hz": round(v("high_shelf_hz"), 1), "db": round(v("high_shelf_db"), 3)}
    if v("peak_db") != 0.0:
        fx["peaking"] = {"hz": round(v("peak_hz"), 1), "db": round(v("peak_db"), 3),
                         "q": round(v("peak_q"), 3)}
    if v("semitones") != 0.0:
        fx["pitch_shift"] = {"semitones": round(v("semitones"), 3)}
    if v("rate") != 1.0:
        fx["time_stretch"] = {"rate": round(v("rate"), 4)}
    eq = any(k in fx for k in ("low_shelf", "high_shelf", "peaking"))
    pv = any(k in fx for k in ("pitch_shift", "time_stretch"))
    if eq and pv:
        fx["order"] = "eq, then pitch/time" if bool(params.eq_first[i, j]) else "pitch/time, then eq"
    return fx


def describe_ambience(amb: Any, i: int) -> dict[str, Any] | None:
    """The bed under example ``i`` (``amb``: numpy :class:`~keras_inst.augment.ambience.AmbienceParams`
    fields ``[B]``, or None when ambience is off): texture and SNR, or a negative's bed level."""
    if amb is None or not bool(amb.on[i]):
        return None
    bed = {"texture": AMBIENCE_TEXTURES[int(amb.kind[i])]}
    if bool(amb.negative[i]):  # no source: the bed alone, at an RMS level before the peak normalisation
        return bed | {"negative": True, "level_dbfs": round(float(amb.level_db[i]), 2)}
    return bed | {"negative": False, "snr_db": round(float(amb.snr_db[i]), 2)}


def _mixing(musical: bool, bed: dict[str, Any] | None) -> str:
    if bed is not None and bed["negative"]:
        return "negative (ambience only)"
    return "musical" if musical else "non-musical"


def _mel_png(path: Path, mel: np.ndarray, *, title: str, cfg: ExperimentConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    seconds = mel.shape[1] * cfg.features.hop_length / cfg.audio.sample_rate
    im = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                   extent=(0.0, seconds, 0, mel.shape[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, label="dB" if cfg.features.compression == "db" else "log")
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=80))
    plt.close(fig)


def write_preview(cfg: ExperimentConfig, out_dir: str | Path, *, n: int = 8, seed: int = 0,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Write ``n`` training examples of seed ``seed`` into ``out_dir``; returns the sidecars."""
    import soundfile as sf

    from keras_inst.augment.ambience import draw_ambience
    from keras_inst.data.cache.store import ensure_cache
    from keras_inst.data.mixing import RecipeSampler
    from keras_inst.data.pipeline import read_datasets, source_table, training_dataset
    from keras_inst.data.splits import load_or_make_split
    from keras_inst.models.frontend import log_mel_from_config

    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    songs, _ = read_datasets(cfg)
    split = load_or_make_split(cfg, songs)
    cache = ensure_cache(cfg, split["train"], progress=progress)
    table = source_table(cfg, cache, split["train"])
    sampler = RecipeSampler(table, cfg.mixing, cfg.effects, seed=seed)
    stems = {(s.dataset, st.stem_id): st for s in split["train"] for st in s.stems}
    x, y, rec = next(iter(training_dataset(cfg, sampler, batch_size=n, with_recipe=True)))
    x, y = x.numpy(), y.numpy()
    params = type(rec["params"])(*(p.numpy() for p in rec["params"]))
    # the beds the stream laid: drawn again from the same seeds (draw_ambience is a pure function)
    amb = draw_ambience(rec["effects_seed"], rec["n"], cfg.effects.ambience)
    amb = None if amb is None else type(amb)(*(np.asarray(f) for f in amb))
    rec = {k: v.numpy() for k, v in rec.items() if k != "params"}
    mel = log_mel_from_config(cfg.features, cfg.audio)(x).numpy()  # [n, n_mels, frames]
    sr = cfg.audio.sample_rate
    sidecars = []
    for i in range(n):
        name = f"example_{int(rec['index'][i]):05d}"
        labels = [c for c, v in zip(CLASSES, y[i], strict=True) if v > 0.5]
        sources = []
        for j in range(int(rec["n"][i])):
            e = table.entries[int(rec["stems"][i, j])]
            stem = stems[(e.dataset, e.stem_id)]
            sources.append({
                "dataset": e.dataset, "song": e.song_id, "stem": e.stem_id,
                "raw_labels": list(stem.labels), "classes": sorted(e.classes),
                "start_seconds": round(int(rec["starts"][i, j]) / sr, 4),
                "audible": bool(rec["audible"][i, j]), "effects": describe_effects(params, i, j),
            })
        bed = describe_ambience(amb, i)
        side = {
            "example": int(rec["index"][i]), "seed": seed,
            "mixing": _mixing(bool(rec["musical"][i]), bed), "ambience": bed,
            "dataset": sampler.table.datasets[int(rec["dataset"][i])],
            "labels": labels, "peak": round(float(np.abs(x[i]).max()), 4),
            "sources": sources, "wav": f"{name}.wav", "png": f"{name}.png",
        }
        atomic.write_with(out / side["wav"],
                          lambda tmp, i=i: sf.write(tmp, x[i], sr, subtype="PCM_16"))
        _mel_png(out / side["png"], mel[i], cfg=cfg,
                 title=f"{name} ({side['mixing']}): {', '.join(labels) or 'no instrument'}{_bed_text(bed, ', ')}")
        atomic.write_json(out / f"{name}.json", side, indent=1)
        sidecars.append(side)
    atomic.write_text(out / "index.md", _index(cfg, sidecars))
    return sidecars


_UNITS = {"db": " dB", "hz": " Hz", "q": "", "semitones": " st", "rate": "x"}


def _fx_text(name: str, value: Any) -> str:
    """``gain -3.56 dB``, ``peaking 1065.2 Hz +5.01 dB q 2.53``, ``order eq, then pitch/time``."""
    if not isinstance(value, Mapping):
        return f"{name}: {value}"
    parts = []
    for k, v in value.items():
        text = f"{v:+.2f}" if k in ("db", "semitones") else f"{v:g}"
        parts.append(f"q {text}" if k == "q" else f"{text}{_UNITS.get(k, '')}")
    return f"{name} {' '.join(parts)}"


def _bed_text(bed: Mapping[str, Any] | None, sep: str) -> str:
    """``, rain bed at 12.5 dB SNR`` / ``, surf bed at -23.1 dBFS`` / ``""``."""
    if bed is None:
        return ""
    level = f"{bed['level_dbfs']} dBFS" if bed["negative"] else f"{bed['snr_db']} dB SNR"
    return f"{sep}{bed['texture']} bed at {level}"


def _index(cfg: ExperimentConfig, sidecars: list[Mapping[str, Any]]) -> str:
    lines = [f"# Training-mix preview ({cfg.name})", "",
             f"{len(sidecars)} examples of the training stream of seed {sidecars[0]['seed']} "
             f"(p_musical {cfg.mixing.p_musical}, datasets {', '.join(cfg.data.datasets)}), made "
             "by the training pipeline itself.", ""]
    for s in sidecars:
        lines += [f"## Example {s['example']}: {s['mixing']}, {s['dataset']}", "",
                  f"[{s['wav']}]({s['wav']}) · labels: **{', '.join(s['labels']) or 'none'}** "
                  f"· peak {s['peak']}{_bed_text(s['ambience'], ' · ')}", "", f"![mel]({s['png']})", "",
                  "| song | stem | raw labels | start (s) | audible | effects |",
                  "|---|---|---|---|---|---|"]
        for src in s["sources"]:
            fx = "; ".join(_fx_text(k, v) for k, v in src["effects"].items()) or "none"
            lines.append(f"| {src['dataset']}/{src['song']} | {src['stem']} | "
                         f"{', '.join(src['raw_labels'])} | {src['start_seconds']} | "
                         f"{'yes' if src['audible'] else 'no'} | {fx} |")
        lines.append("")
    return "\n".join(lines)


def run_preview_cli(args: Any) -> int:
    """``python -m keras_inst.data preview``: ``args`` has config, overrides, n, out, seed."""
    from keras_inst.config.io import load_config
    from keras_inst.data.rendered import ensure_rendered_corpus

    cfg = load_config(args.config, args.overrides)
    ensure_rendered_corpus(cfg)
    sidecars = write_preview(cfg, args.out, n=args.n, seed=args.seed)
    for s in sidecars:
        print(f"{s['wav']}: {s['mixing']:<11} {len(s['sources'])} sources -> "
              f"{', '.join(s['labels']) or '(no instrument)'}{_bed_text(s['ambience'], '; ')}")
    print(f"Preview: {Path(args.out) / 'index.md'}")
    return 0
