"""Fuse a complete run's model with musicnn's zero-shot tagger after the fact; prints JSON.

    python scripts/fuse_run.py RUN_DIR --out NEW_RUN_DIR [--tagger musicnn_mtt_musicnn] [--weight 0.5]
        [--partial-weight 0.25] [--space probability|logit] [--model checkpoints/best.keras] [--probe LABELS.json]

NEW_RUN_DIR is a run directory like any other (config with ``model.fusion_tagger`` set, the
fused model.keras, report.json/report.md with the ``without_fusion`` comparison), evaluated on
the same splits; ``keras-inst predict --model NEW_RUN_DIR`` and ``keras-inst export`` take it.
"""

from __future__ import annotations

import argparse
import json

from keras_inst.config.schema import FUSION_SPACES
from keras_inst.training.fusion_runs import fuse_existing_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tagger", default="musicnn_mtt_musicnn")
    ap.add_argument("--weight", type=float, default=0.5)
    ap.add_argument("--partial-weight", type=float, default=None,
                    help="the tagger's weight where its tags name only some of a class's instruments (default: --weight)")
    ap.add_argument("--space", choices=FUSION_SPACES, default=None,
                    help="average probabilities or logits (default: the run config's model.fusion_space)")
    ap.add_argument("--model", default="model.keras", help="the classifier in RUN_DIR to fuse (a fused run's plain one: "
                    "checkpoints/best.keras)")
    ap.add_argument("--probe", help="also score a real-recording probe (labels.json)")
    a = ap.parse_args()
    report = fuse_existing_run(a.run_dir, a.out, tagger=a.tagger, weight=a.weight, space=a.space,
                               partial_weight=a.partial_weight, probe=a.probe, model_file=a.model)
    keys = ("test", "held_out")
    print(json.dumps({"fused": {k: report[k]["roc_auc"] for k in keys if k in report}
                      | ({"probe": report["probe"]["macro_roc_auc"]} if "probe" in report else {}),
                      "without_fusion": report["without_fusion"]}, indent=1))


if __name__ == "__main__":
    main()
