"""scripts/bench_freeze.py: variant names -> config overrides, and a bad name fails clearly."""

from __future__ import annotations

import pytest
from script_module import load_script

from keras_inst.config.io import load_config


def _bench():
    return load_script("bench_freeze")


def test_variants_become_the_overrides_they_name():
    bench = _bench()
    assert bench.variant_sets("all") == ["training.trainable_blocks=null"]
    assert bench.variant_sets("3") == ["training.trainable_blocks=3"]
    assert bench.variant_sets("3+distill") == ["training.trainable_blocks=3", "training.distill_weight=1"]
    cfg = load_config("demo", bench.variant_sets("all+distill"))
    assert cfg.training.trainable_blocks is None and cfg.training.distill_weight == 1.0


@pytest.mark.parametrize("bad", ["three", "3+lwf", "+distill", "-1"])
def test_a_bad_variant_names_itself(bad):
    with pytest.raises(ValueError, match=bad.replace("+", r"\+")):
        _bench().variant_sets(bad)
