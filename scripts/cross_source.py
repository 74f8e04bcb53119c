"""Cross-source evaluation: train with one sample-source family, song style or sound engine held
out, judge in-domain and on other songs made of it (keras_inst.training.cross_source).

    python scripts/cross_source.py --config demo --family timgm6mb --songs 30 \
        --run-dir runs/cross_source/fluidr3
    python scripts/cross_source.py --style electronic electropop --songs 10 --set training.epochs=3
    python scripts/cross_source.py --engine builtin_synth --songs 10 --set training.epochs=3

Reduced scale: --songs sets the held-out songs; --set data.render_songs=... / training.epochs=...
shrink the training side (a style or engine needs another training corpus: its own
data.roots.rendered, e.g. --set data.roots.rendered=data/rendered_styles).

Writes the run directory (report.md then holds both tables) plus cross_source.json and
cross_source.md; prints the JSON summary (macro figures). Re-running resumes or reuses the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_inst.config.io import add_override_argument, load_config
from keras_inst.config.schema import HELD_OUT_ENGINES, SONG_STYLES
from keras_inst.training.cross_source import FAMILIES, run_cross_source


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="demo", help="config file or shipped name (default: demo)")
    add_override_argument(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--family", default=None, choices=sorted(FAMILIES),
                      help="source family to hold out (default: the config's data.held_out_*)")
    what.add_argument("--style", default=None, nargs="+", choices=SONG_STYLES,
                      help="generated-song style(s) to hold out (e.g. electronic electropop: both electronic styles)")
    what.add_argument("--engine", default=None, nargs="+", choices=HELD_OUT_ENGINES,
                      help="opt-in sound engine(s) to hold out; in the held-out songs they play every stem they "
                           "can, the training sources the rest")
    p.add_argument("--songs", type=int, default=20, help="held-out songs to render (with --family, --style or --engine)")
    p.add_argument("--seed", type=int, default=None, help="held-out render seed (default: data.render_seed + 1)")
    p.add_argument("--run-dir", default=None, help="default: runs/cross_source/<config>-<family>")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        held = args.family or (args.style and "style-" + "+".join(args.style)) or (args.engine and "engine-" + "+".join(args.engine)) or "config"
        run_dir = Path(args.run_dir or Path("runs") / "cross_source" / f"{cfg.name}-{held}")
        s = run_cross_source(cfg, run_dir, family=args.family, style=args.style, engine=args.engine, songs=args.songs,
                             seed=args.seed, overwrite=args.overwrite)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    macro = {k: {m: s[k][m] for m in ("examples", "roc_auc", "pr_auc")} for k in ("in_domain", "held_out")}
    what = {k: s[k] for k in ("held_out_sources", "held_out_styles", "held_out_engines") if s[k]}
    print(json.dumps({"run_dir": str(run_dir), **what, **macro, **({"tagger": s["tagger"]} if "tagger" in s else {})}, indent=2))
    print(f"Table: {run_dir / 'cross_source.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
