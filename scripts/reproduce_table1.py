"""Reproduce the paper's Table 1: the three transfer-learning modes from one config.

Runs ``scratch``, ``frozen`` and ``finetune`` with the same data, split and seed (only
``training.transfer``, and for scratch ``training.pretrained=null``, differ), then writes the
ROC-AUC / PR-AUC / test-loss table as markdown, like the paper's:

    python scripts/reproduce_table1.py --config configs/table1_embedded.yaml --out-dir runs/table1

Each mode's full run directory (report, history, model) lands under ``--out-dir``; re-running the
command resumes or reuses finished runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from keras_inst.config.io import add_override_argument, load_config

MODES = (("From Scratch", "scratch"), ("Frozen Backbone", "frozen"), ("Fine-tuned", "finetune"))
PAPER = {"scratch": (0.8488, 0.6812, 0.4459), "frozen": (0.8908, 0.7623, 0.4160), "finetune": (0.9429, 0.8334, 0.3618)}


def mode_overrides(mode: str) -> list[str]:
    if mode == "scratch":
        return ["training.transfer=scratch", "training.pretrained=null"]
    return [f"training.transfer={mode}"]


def table(results: dict[str, dict], *, with_paper: bool = True) -> str:
    lines = ["| | ROC-AUC | PR-AUC | Test Loss |" + (" paper ROC-AUC | paper PR-AUC | paper loss |" if with_paper else ""), "|---|---|---|---|" + ("---|---|---|" if with_paper else "")]
    for label, mode in MODES:
        if mode not in results:
            continue
        t = results[mode]["test"]
        row = f"| {label} | {t['roc_auc']:.4f} | {t['pr_auc']:.4f} | {t['loss']:.4f} |"
        if with_paper:
            row += " {:.4f} | {:.4f} | {:.4f} |".format(*PAPER[mode])
        lines.append(row)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="table1_embedded")
    add_override_argument(p)
    p.add_argument("--out-dir", default="runs/table1")
    p.add_argument("--modes", default="scratch,frozen,finetune")
    args = p.parse_args(argv)

    from keras_inst.training.train import train

    out = Path(args.out_dir)
    results: dict[str, dict] = {}
    timing: dict[str, float] = {}
    for mode in args.modes.split(","):
        cfg = load_config(args.config, [*args.overrides, *mode_overrides(mode)])
        cfg = cfg.replace(name=f"{cfg.name}_{mode}")
        t0 = time.time()
        results[mode] = train(cfg, out / mode)
        timing[mode] = round(time.time() - t0, 1)
    md = table(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table1.md").write_text(md, encoding="utf-8")
    summary = {m: {k: results[m]["test"][k] for k in ("roc_auc", "pr_auc", "loss")} for m in results}
    summary["seconds"] = timing
    (out / "table1.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(md)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
