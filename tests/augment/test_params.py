"""keras_inst.augment.params: the parameter types both effect chains share."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

import keras_inst.augment as augment
from keras_inst.augment import params as P
from keras_inst.augment import reference as EN

AUGMENT = Path(augment.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return out | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_tf_chain_does_not_import_the_numpy_reference():
    for name in ("effects.py", "vocoder.py"):
        imported = _imported_modules(AUGMENT / name)
        assert "keras_inst.augment.params" in imported, name
        assert "keras_inst.augment.reference" not in imported, name
    # and neither the reference nor the shared types need TensorFlow
    for name in ("params.py", "reference.py"):
        assert not any(m.split(".")[0] == "tensorflow" for m in _imported_modules(AUGMENT / name))


def test_both_chains_use_the_same_types():
    from keras_inst.augment import effects as E

    assert E.EffectParams is EN.EffectParams is P.EffectParams
    assert EN.IDENTITY is P.IDENTITY and EN.SHELF_Q == P.SHELF_Q == 1.0 / np.sqrt(2.0)
    assert P.IDENTITY == (0.0, 100.0, 0.0, 4000.0, 0.0, 1000.0, 0.0, 1.0, 0.0, 1.0, True)
    assert P.PV_N_FFT == 1024 and EN.PV_HOP == 256


def test_params_item_takes_one_source_of_a_batch():
    batch = P.EffectParams(*(np.array([v, v]) for v in P.IDENTITY))
    batch = batch._replace(gain_db=np.array([-3.0, 2.5], np.float32))
    one = P.params_item(batch, 1)
    assert one == P.IDENTITY._replace(gain_db=2.5)
    assert all(type(v) in (float, bool) for v in one)
