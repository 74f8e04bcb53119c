"""Lead vocals at a produced song's level against the band (opt-in: ``data.render_vocal_lar_db``).

Every stem is rendered at the same loudness target (+-3 dB), so a lead vocal over five other
stems sits ~7 dB below the rest of the mix. Produced pop is mixed the other way round: the
lead-vocal-to-accompaniment ratio (LAR) of Billboard hits has averaged about +1 dB since 1975,
positive in pop, country and rap, near 0 in rock, negative in metal (Gerdes & Siedenburg,
"Lead-vocal level in recordings of popular music 1946-2020", JASA Express Letters 3, 043201,
2023). :func:`set_lead_vocal_levels` draws a LAR per lead vocal (seeded per track) and scales
the vocal stem to it, measured with BS.1770 loudness over the samples where the vocal sings
(so a vocal that sings only in a dense drop is set against the drop). The drawn LAR and the gain
are recorded in the stem's metadata.

Lead vocals: generated songs' ``vocal`` and spoken ``spoken vocal`` stems, and an arranged
score's sung ``melody`` (GM 53) unless another stem sings too (a choir has no lead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_inst.corpus.synth import integrated_loudness

SUNG, CHOIR = 53, 52  # GM "Voice Oohs" (the corpus's sung melodies) and "Choir Aahs"
LEAD_ROLES = ("vocal", "spoken vocal")
MAX_GAIN_DB = 24.0  # a larger correction means the measurement failed (near-silent span): clipped


def lead_vocal_indices(stems: Sequence[Any]) -> list[int]:
    """Indices of the lead vocals among rendered ``stems`` (each with ``spec.role`` / ``spec.program``)."""
    singing = [i for i, s in enumerate(stems) if s.spec.program in (SUNG, CHOIR) and s.spec.role not in LEAD_ROLES]
    out = []
    for i, s in enumerate(stems):
        if s.spec.role in LEAD_ROLES:
            out.append(i)
        elif s.spec.role == "melody" and s.spec.program == SUNG and singing == [i]:
            out.append(i)
    return out


def active_mask(notes: Sequence[tuple], n_samples: int, sr: int) -> np.ndarray:
    """``[n_samples]`` bool: inside some note ``(onset s, duration s, key, velocity)``."""
    mask = np.zeros(n_samples, bool)
    for on, dur, *_ in notes:
        mask[max(0, int(on * sr)):min(n_samples, int(np.ceil((on + dur) * sr)))] = True
    return mask


def lar_db(vocal: np.ndarray, accompaniment: np.ndarray, mask: np.ndarray, sr: int) -> float:
    """Loudness of ``vocal`` minus that of ``accompaniment`` (LU) over the ``mask`` samples; nan
    when either is silent there."""
    return float(integrated_loudness(vocal[mask], sr) - integrated_loudness(accompaniment[mask], sr))


def set_lead_vocal_levels(stems: list, lar_range: tuple[float, float], *, seed: int, sr: int) -> list:
    """``stems`` (RenderedStem-like named tuples: ``spec``, ``notes``, ``audio``, ``details``) with
    every lead vocal scaled to a LAR drawn uniformly in ``lar_range`` (dB); its ``details`` gain
    ``lar_db`` (the drawn target) and ``lar_gain_db``. A song without accompaniment, or a vocal
    whose span the accompaniment leaves silent, is left as it is."""
    lo, hi = lar_range
    leads = lead_vocal_indices(stems)
    band = [s.audio for i, s in enumerate(stems) if i not in leads]
    if not leads or not band:
        return stems
    accompaniment = np.sum(band, axis=0)  # [n_samples]
    rng = np.random.default_rng([seed, 0x1A2])
    out = list(stems)
    for i in leads:
        target = float(rng.uniform(lo, hi))  # drawn for every lead: the stream does not depend on the audio
        s = stems[i]
        now = lar_db(s.audio, accompaniment, active_mask(s.notes, len(s.audio), sr), sr)
        if not np.isfinite(now):
            continue
        gain = float(np.clip(target - now, -MAX_GAIN_DB, MAX_GAIN_DB))
        out[i] = s._replace(audio=s.audio * 10 ** (gain / 20),
                            details={**s.details, "lar_db": round(target, 2), "lar_gain_db": round(gain, 2)})
    return out
