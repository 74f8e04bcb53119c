"""Data command line: ``python -m keras_inst.data {inspect,cache,render,preview} ...``.

Each subcommand lives in the module of its concern; this file only parses arguments and
dispatches, importing the implementation lazily so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from keras_inst.config.io import add_override_argument
from keras_inst.config.registry import DATASETS


def _db_range(text: str) -> tuple[float, float]:
    """``"-2,4"`` -> (-2.0, 4.0)."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH in dB (e.g. --vocal-lar=-3,5), got {text!r}") from None
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m keras_inst.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="summarise a dataset download: songs, stems, class counts, problems")
    p.add_argument("--dataset", required=True, choices=DATASETS.names())
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--json", dest="json_path", default=None, help="also write the summary as JSON here")
    p.add_argument("--no-audio-check", dest="audio_check", action="store_false", help="skip opening every audio file (metadata and labels only)")

    p = sub.add_parser("cache", help="decode, resample and cache the stems of datasets for fast chunk access")
    p.add_argument("--config", default=None, help="config whose data section names datasets and roots")
    p.add_argument("--dataset", choices=DATASETS.names(), default=None, help="one dataset (with --root)")
    p.add_argument("--root", default=None)
    p.add_argument("--cache-dir", default=None, help="default: the config's data.cache_dir")
    p.add_argument("--sample-rate", type=int, default=None, help="default: the config's audio.sample_rate")
    p.add_argument("--workers", type=int, default=None, help="parallel decode processes (default: all cores)")
    add_override_argument(p)

    p = sub.add_parser("render", help="render the embedded multitrack corpus (Slakh layout) from music21 scores")
    p.add_argument("--out", required=True, help="output folder (Slakh layout: TrackNNNNN/...)")
    p.add_argument("--songs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--soundfont", default=None, help="one .sf2 for every stem instead of the sample-source registry")
    p.add_argument("--sources", default=None, help="comma-separated sample sources to draw from (default: all installed)")
    p.add_argument("--exclude-sources", default=None, help="comma-separated sample sources to leave out (held-out evaluation)")
    p.add_argument("--sample-rate", type=int, default=16000, help="stem sample rate (default 16000)")
    p.add_argument("--workers", type=int, default=None, help="parallel render processes (default: all cores)")
    p.add_argument("--max-seconds", type=float, default=30.0, help="length of each song's excerpt in seconds (default 30)")
    p.add_argument("--modern", action="store_true",
                   help="opt-in: built-in synthesizer and drum machine join the draw, electric guitars get amps")
    p.add_argument("--styles", type=lambda s: tuple(x for x in s.split(",") if x), default=(),
                   help="opt-in: generate a share of the songs in these styles (pop,rock,electronic,funk,jazz,electropop)")
    p.add_argument("--generated-share", type=float, default=0.5,
                   help="share of generated songs when --styles is given (default 0.5)")
    p.add_argument("--prefer-sources", default=None,
                   help="comma-separated sample sources that play every stem they can, the others the rest "
                        "(a held-out engine beside the training sources)")
    p.add_argument("--speech", type=float, default=0.0,
                   help="opt-in: chance per song of a spoken-vocal stem (flite; labelled voice only), default 0")
    p.add_argument("--vocal-lar", type=_db_range, default=None, metavar="LOW,HIGH",
                   help="opt-in: lead vocals at a lead-to-accompaniment ratio drawn in LOW..HIGH dB (e.g. --vocal-lar=-3,5)")

    p = sub.add_parser("preview", help="write example training mixes as WAV + PNG with their labels")
    p.add_argument("--config", default="demo")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    add_override_argument(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "inspect":
            from keras_inst.data.datasets.inspect import run_inspect

            return run_inspect(args)
        if args.command == "cache":
            from keras_inst.data.cache.build import run_cache_cli

            return run_cache_cli(args)
        if args.command == "render":
            from keras_inst.corpus.render import run_render_cli

            return run_render_cli(args)
        if args.command == "preview":
            from keras_inst.data.preview import run_preview_cli

            return run_preview_cli(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
