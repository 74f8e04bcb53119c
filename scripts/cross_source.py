"""Cross-source evaluation: train with one sample-source family held out, judge in-domain and on
other songs rendered only with that family (keras_inst.training.cross_source).

    python scripts/cross_source.py --config demo --family timgm6mb --songs 30 \
        --run-dir runs/cross_source/fluidr3

Writes the run directory (report.md then holds both tables) plus cross_source.json and
cross_source.md; prints the JSON summary (macro figures). Re-running resumes or reuses the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_inst.config.io import add_override_argument, load_config
from keras_inst.training.cross_source import FAMILIES, run_cross_source


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="demo", help="config file or shipped name (default: demo)")
    add_override_argument(p)
    p.add_argument("--family", default=None, choices=sorted(FAMILIES),
                   help="source family to hold out (default: the config's data.held_out_sources)")
    p.add_argument("--songs", type=int, default=20, help="held-out songs to render (with --family)")
    p.add_argument("--seed", type=int, default=None, help="held-out render seed (default: data.render_seed + 1)")
    p.add_argument("--run-dir", default=None, help="default: runs/cross_source/<config>-<family>")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir or Path("runs") / "cross_source" / f"{cfg.name}-{args.family or 'config'}")
        s = run_cross_source(cfg, run_dir, family=args.family, songs=args.songs, seed=args.seed, overwrite=args.overwrite)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    macro = {k: {m: s[k][m] for m in ("examples", "roc_auc", "pr_auc")} for k in ("in_domain", "held_out")}
    print(json.dumps({"run_dir": str(run_dir), "held_out_sources": s["held_out_sources"], **macro}, indent=2))
    print(f"Table: {run_dir / 'cross_source.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
