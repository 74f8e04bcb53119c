"""Convert a PyTorch ShortChunkCNN(_Res) state_dict into a keras_inst backbone weights file.

    python scripts/convert_torch_short_chunk.py best_model.pth --out short_chunk_cnn.weights.h5
    python scripts/convert_torch_short_chunk.py res.pth --out res.weights.h5 --res

The ``.pth`` is a state_dict of minzwon/sota-music-tagging-models' ShortChunkCNN (or, with
``--res``, ShortChunkCNN_Res), e.g. trained on MTG-Jamendo top-50. Only the backbone is saved
(``backbone.save_weights``): keras_inst replaces the fully connected layers (paper §2.4) and
loads the file as the ``short_chunk_cnn`` pretrained backbone. Needs PyTorch (CPU is enough).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from keras_inst.config.io import add_override_argument


def _load_torch_state_dict(path: Path) -> dict:
    """The state_dict in ``path`` as NumPy arrays (PyTorch imported here only)."""
    try:
        import torch
    except ImportError:
        raise SystemExit(
            "error: PyTorch is needed to read .pth files: pip install torch "
            "(the CPU build is enough)"
        ) from None
    if not path.is_file():
        raise SystemExit(f"error: state dict file {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt/unsafe files
        raise SystemExit(f"error: {path} is not a loadable PyTorch state_dict: {e}") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]  # a checkpoint dict wrapping the state_dict
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit(f"error: {path} does not hold a state_dict (a mapping of tensors)")
    return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("state_dict", type=Path, help="PyTorch .pth state_dict")
    p.add_argument("--out", type=Path, required=True, help="output file, must end in .weights.h5")
    p.add_argument("--config", default="paper", help="config name or YAML path (default: paper)")
    p.add_argument("--res", action="store_true", help="the state_dict is a ShortChunkCNN_Res")
    add_override_argument(p, example="model.width_multiplier=0.5")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.out.name.endswith(".weights.h5"):
        raise SystemExit(
            f"error: --out must end in .weights.h5 (Keras weights file), got {args.out}"
        )
    state = _load_torch_state_dict(args.state_dict)

    from keras_inst.config.io import load_config  # TensorFlow only after the arguments check out
    from keras_inst.models.short_chunk import build_model
    from keras_inst.models.torch_convert import load_state_dict

    arch = "short_chunk_res" if args.res else "short_chunk_cnn"
    try:
        cfg = load_config(args.config, [*args.overrides, f"model.architecture={arch}"])
        model = build_model(cfg)
        report = load_state_dict(state, model, head="none")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.get_layer("backbone").save_weights(args.out)
    print(f"{args.state_dict}: {len(report.loaded)} backbone tensors ({arch}) -> {args.out}")
    if report.ignored:
        print(
            f"ignored {len(report.ignored)} keys (front end, head, counters): "
            + ", ".join(report.ignored)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
