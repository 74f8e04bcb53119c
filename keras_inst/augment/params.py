"""Parameter types shared by the TensorFlow effects chain and its NumPy reference.

:class:`EffectParams` is the record both :mod:`keras_inst.augment.effects` (batched, TF) and
:mod:`keras_inst.augment.reference` (one signal, NumPy) take; the constants are the ones both
must agree on (filter kinds, the shelf slope, the phase vocoder's FFT size). No TensorFlow here,
so the NumPy reference stays TensorFlow-free and the TF chain does not import the reference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

FILTER_KINDS = ("low_shelf", "high_shelf", "peaking")
SHELF_Q = 1.0 / np.sqrt(2.0)  # shelf slope S = 1 in the cookbook equals Q = 1/sqrt(2)
PV_N_FFT = 1024  # phase-vocoder FFT size: 64 ms at 16 kHz (both chains)


class EffectParams(NamedTuple):
    """Per-source effect parameters; each field is a float (one source) or an array/tensor [B].

    An absent effect has its identity value: 0 dB gain (also for the three filters, whose
    frequency/Q are then irrelevant), ``semitones`` 0 and ``rate`` 1. ``rate`` > 1 makes the
    source faster (its content is read ``rate`` times faster). ``eq_first`` says whether the
    filters run before (True) or after (False) the pitch/time stage; gain is a scalar factor and
    commutes with every stage, so its position in the chain is immaterial.
    """

    gain_db: Any
    low_shelf_hz: Any
    low_shelf_db: Any
    high_shelf_hz: Any
    high_shelf_db: Any
    peak_hz: Any
    peak_db: Any
    peak_q: Any
    semitones: Any
    rate: Any
    eq_first: Any


IDENTITY = EffectParams(
    gain_db=0.0, low_shelf_hz=100.0, low_shelf_db=0.0, high_shelf_hz=4000.0, high_shelf_db=0.0,
    peak_hz=1000.0, peak_db=0.0, peak_q=1.0, semitones=0.0, rate=1.0, eq_first=True,
)


def params_item(params: EffectParams, index: int) -> EffectParams:
    """Python scalars of item ``index`` of batched parameters (arrays or eager tensors [B])."""
    return EffectParams(*(np.asarray(v)[index].item() for v in params))
