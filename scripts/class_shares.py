"""How often each class is drawn into a non-musical training mix, for several ``mixing.stem_balance``
exponents (exact shares from the corpus's stem labels; nothing is mixed); prints JSON.

    python scripts/class_shares.py [--config demo] [--set data.roots.rendered=...] [--exponents 0 0.5 1]

One entry per dataset of the config: per class the share of single-source draws holding it
(songs by their stems' mean weight, then a stem by weight: keras_inst.data.balance), and the
share of the dataset's stems holding it. Used for docs/results.md "Rare classes drawn more often".
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from keras_inst.config.io import add_config_arguments, load_config
from keras_inst.data.balance import non_musical_class_shares
from keras_inst.data.datasets import read_dataset
from keras_inst.taxonomy import CLASSES, multi_hot


def class_shares(cfg, exponents: list[float]) -> dict:
    out = {}
    for name in cfg.data.datasets:
        songs, _ = read_dataset(name, cfg.data.roots[name])
        per_song = [np.stack([multi_hot(st.classes) > 0 for st in s.stems]) for s in songs if s.stems]
        stems = np.concatenate(per_song)
        out[name] = {"songs": len(per_song), "stems": int(stems.shape[0]),
                     "stem_share": dict(zip(CLASSES, np.round(stems.mean(0), 4).tolist(), strict=True)),
                     "draw_share": {str(x): dict(zip(CLASSES, np.round(non_musical_class_shares(per_song, x), 4).tolist(),
                                                     strict=True)) for x in exponents}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(ap, default="demo", example="data.roots.rendered=data/rendered_demo")
    ap.add_argument("--exponents", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    a = ap.parse_args()
    print(json.dumps(class_shares(load_config(a.config, a.overrides), a.exponents), indent=1))


if __name__ == "__main__":
    main()
