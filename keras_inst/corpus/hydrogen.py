"""Hydrogen drum kits (``drumkit.xml`` + WAV/FLAC layers) as General-MIDI drum sources.

:func:`load_kit` parses a kit folder: every instrument with its volume, gain, mute group and
velocity layers (Hydrogen >= 0.9.4 writes ``<layer>`` elements, optionally inside
``<instrumentComponent>``; older kits give one ``<filename>`` per instrument). :func:`gm_key_map`
assigns the GM drum keys the corpus plays (:mod:`keras_inst.corpus.drums`) to instruments by
name, and :func:`render_hits` plays ``(onset_s, duration_s, key, velocity)`` hits the way
Hydrogen's sampler does: the layer whose ``[min, max]`` holds ``velocity / 127``, at amplitude
``velocity / 127 * layer gain * instrument gain * volume``; a hit in a mute group (open / closed
hi-hat) cuts the group's ringing sample with a 10 ms fade.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from keras_inst.corpus.gains import note_gain_db


@dataclass(frozen=True)
class Layer:
    path: Path
    vmin: float  # velocity range as Hydrogen writes it, 0..1
    vmax: float
    gain: float


@dataclass(frozen=True)
class Instrument:
    id: int
    name: str
    gain: float  # volume * gain of the instrument
    mute_group: int  # -1: none
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class Kit:
    name: str
    folder: Path
    license: str
    instruments: tuple[Instrument, ...]


def _strip_ns(root: ET.Element) -> None:
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]


def _f(el: ET.Element, tag: str, default: float) -> float:
    text = el.findtext(tag)
    try:
        return float(text) if text not in (None, "") else default
    except ValueError:
        return default


@lru_cache(maxsize=16)
def load_kit(folder: str | Path) -> Kit:
    """Parse ``folder/drumkit.xml`` (once per process); instruments without a sample file are left out."""
    folder = Path(folder)
    xml = folder / "drumkit.xml"
    if not xml.is_file():
        raise ValueError(f"{folder}: no drumkit.xml (not a Hydrogen kit)")
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{xml}: unreadable drumkit.xml ({e})") from e
    _strip_ns(root)
    instruments = []
    for inst in root.iter("instrument"):
        layers = []
        for lay in inst.iter("layer"):
            path = folder / (lay.findtext("filename") or "")
            if path.is_file():
                layers.append(Layer(path, _f(lay, "min", 0.0), _f(lay, "max", 1.0), _f(lay, "gain", 1.0)))
        legacy = inst.findtext("filename")
        if not layers and legacy and (folder / legacy).is_file():  # pre-0.9.4 kit: one sample
            layers.append(Layer(folder / legacy, 0.0, 1.0, 1.0))
        if not layers:
            continue
        instruments.append(Instrument(
            int(_f(inst, "id", len(instruments))), (inst.findtext("name") or "").strip(),
            _f(inst, "volume", 1.0) * _f(inst, "gain", 1.0), int(_f(inst, "muteGroup", -1)), tuple(layers),
        ))
    if not instruments:
        raise ValueError(f"{xml}: no instrument with a sample file")
    return Kit(root.findtext("name") or folder.name, folder, (root.findtext("license") or "").strip(), tuple(instruments))


# GM drum key -> name patterns, first match wins; each pattern is tried on every instrument
# before the next pattern, so "closed hh" beats a plain "hat".
_GM_NAMES: dict[int, tuple[str, ...]] = {
    36: (r"\bkick\b", r"bass ?drum", r"\bbd\b"),
    37: (r"side ?stick", r"\bstick\b", r"rim ?click", r"rimshot"),
    38: (r"^(?!.*(roll|rim|stick|jazz)).*snare", r"snare"),
    39: (r"clap",),
    42: (r"(closed|cl)\b.*(hh|hat)|(hh|hat).*(closed|\bcl\b)", r"^(?!.*(open|pedal|semi|swish)).*(hi-?hat|\bhh\b)"),
    44: (r"pedal.*(hh|hat)|(hh|hat).*(pedal|\bpd\b)",),
    46: (r"^(?!.*semi)(open.*(hh|hat)|(hh|hat).*(open|\bop\b))", r"open.*(hh|hat)|(hh|hat).*(open|\bop\b)"),
    49: (r"crash",),
    51: (r"^(?!.*bell).*ride",),
    54: (r"tambourine",),
    70: (r"maraca", r"shaker"),
}
_TOM_KEYS = (41, 43, 45, 47, 48, 50)  # low floor .. high tom


def _tom_rank(name: str) -> float:
    """Pitch rank of a tom from its name: floor < low < mid < high ('Tom 1' is the highest)."""
    n = name.lower()
    for word, rank in (("floor", 0.0), ("low", 1.0), ("lo", 1.0), ("mid", 2.0), ("high", 3.0), ("hi", 3.0)):
        if re.search(rf"\b{word}\b", n):
            return rank
    num = re.search(r"tom\s*(\d)", n)
    return 3.5 - float(num.group(1)) * 0.5 if num else 1.5


@lru_cache(maxsize=32)
def gm_key_map(kit: Kit) -> dict[int, int]:
    """GM drum key -> index into ``kit.instruments``, for the keys this kit can play."""
    names = [i.name.lower() for i in kit.instruments]
    out: dict[int, int] = {}
    for key, patterns in _GM_NAMES.items():
        for pat in patterns:
            hit = next((j for j, n in enumerate(names) if re.search(pat, n)), None)
            if hit is not None:
                out[key] = hit
                break
    toms = sorted((j for j, n in enumerate(names) if re.search(r"\btom", n) and "tomb" not in n),
                  key=lambda j: (_tom_rank(names[j]), j))
    if toms:  # spread the six GM toms over the kit's toms, low to high
        for i, key in enumerate(_TOM_KEYS):
            out[key] = toms[round(i * (len(toms) - 1) / (len(_TOM_KEYS) - 1))]
    return out


@lru_cache(maxsize=512)
def _sample(path: Path, sample_rate: int) -> np.ndarray:
    """One layer's audio as mono float32 [n] at ``sample_rate``, read once per process."""
    import soundfile as sf

    from keras_inst.corpus.dsp import resample

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [n, channels]
    return resample(x.mean(axis=1), sr, sample_rate).astype(np.float32, copy=False)


def _layer(inst: Instrument, velocity: int) -> Layer:
    v = velocity / 127.0
    for lay in inst.layers:
        if lay.vmin <= v <= lay.vmax:
            return lay
    return min(inst.layers, key=lambda lay: min(abs(v - lay.vmin), abs(v - lay.vmax)))


def render_hits(
    kit: Kit,
    notes: list[tuple[float, float, int, int]],
    *,
    sample_rate: int,
    n_samples: int,
    velocity_gains: tuple[tuple[int, float], ...] = (),
    key_gains: tuple[tuple[int, float], ...] = (),
) -> np.ndarray:
    """Play (onset_s, duration_s, key, velocity) hits on the kit -> mono float32 [n_samples].

    Keys the kit lacks raise ValueError (the source registry only draws a kit that covers the
    part). ``velocity_gains`` = ((max_velocity, gain_db), ...) and ``key_gains`` = ((key, gain_db),
    ...) are the measured level corrections (velocity curve, kit balance).
    """
    keymap = gm_key_map(kit)
    missing = sorted({k for _, _, k, _ in notes} - set(keymap))
    if missing:
        raise ValueError(f"Hydrogen kit {kit.name!r} has no instrument for GM drum keys {missing}")
    out = np.zeros(n_samples, dtype=np.float32)
    groups: dict[int, np.ndarray] = {}  # mute group -> its own buffer, so a choke cuts only it
    fade = max(1, int(0.01 * sample_rate))
    for on, _dur, key, vel in sorted(notes, key=lambda n: n[0]):
        inst = kit.instruments[keymap[key]]
        a = int(round(on * sample_rate))
        if a >= n_samples:
            continue
        buf = out
        if inst.mute_group >= 0:
            if inst.mute_group in groups:  # choke: fade out what the group still rings
                buf = groups[inst.mute_group]
                m = min(fade, n_samples - a)
                buf[a : a + m] *= np.linspace(1.0, 0.0, m, dtype=np.float32)
                buf[a + m :] = 0.0
            else:
                buf = groups.setdefault(inst.mute_group, np.zeros(n_samples, dtype=np.float32))
        lay = _layer(inst, vel)
        gain = vel / 127.0 * lay.gain * inst.gain * 10 ** (note_gain_db(vel, key, velocity_gains, key_gains) / 20)
        x = _sample(lay.path, sample_rate)[: n_samples - a]
        buf[a : a + len(x)] += gain * x
    for buf in groups.values():
        out += buf
    return out
