"""GUS-patch sample sets (Debian ``freepats``) played by TiMidity++, as a corpus sample source.

tinysoundfont reads only SoundFonts, so a part is written as a one-track MIDI file and rendered
by the ``timidity`` binary: mono, at the corpus rate, reverb/chorus/delay off (the other sources
are dry too), initial silence kept so onsets stay where the MIDI puts them. Debian's timidity
always reads its default ``/etc/timidity/timidity.cfg`` before ``-c`` (that one maps every GM
program to FluidR3); the freepats config given with ``-c`` overrides only the programs it
defines, so the registry lists exactly those (:func:`cfg_coverage`) and never asks for others.
TiMidity++ has no random parts: a render is bit-identical for the same input.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np


def binary() -> str | None:
    """Path of the timidity executable, or None."""
    return shutil.which("timidity")


@lru_cache(maxsize=4)
def cfg_coverage(cfg: str) -> tuple[frozenset[int], frozenset[int]]:
    """(GM programs of ``bank 0``, GM drum keys of ``drumset 0``) that a timidity config defines."""
    programs: set[int] = set()
    keys: set[int] = set()
    section = None
    for line in Path(cfg).read_text(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] in ("bank", "drumset") and len(words) > 1:
            section = (words[0], words[1])
        elif re.fullmatch(r"\d+", words[0]) and section in (("bank", "0"), ("drumset", "0")):
            (programs if section[0] == "bank" else keys).add(int(words[0]))
    return frozenset(programs), frozenset(keys)


def _render_once(notes: list, program: int, cfg: str, sample_rate: int, n_samples: int, tmp: Path) -> np.ndarray:
    import pretty_midi
    import soundfile as sf

    drum = program == 128
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=0 if drum else program, is_drum=drum)
    inst.notes = [pretty_midi.Note(velocity=int(v), pitch=int(k), start=float(on), end=float(on + d))
                  for on, d, k, v in notes]
    pm.instruments.append(inst)
    mid, wav = tmp / "part.mid", tmp / "part.wav"
    pm.write(str(mid))
    cmd = [binary() or "timidity", "-c", cfg, "-idq", "-Ow", "--output-mono", "--output-16bit", "-s", str(sample_rate),
           "--preserve-silence", "-EFreverb=d", "-EFchorus=d", "-EFdelay=d", "-o", str(wav), str(mid)]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (subprocess.TimeoutExpired, OSError) as e:  # hung or unrunnable: this track fails (reported), not the render
        raise ValueError(f"timidity failed on program {program} with {cfg}: {e}") from e
    if run.returncode != 0 or not wav.is_file():
        raise ValueError(f"timidity failed on program {program} with {cfg}: {run.stderr.strip()[-300:]}")
    x, sr = sf.read(str(wav), dtype="float32")
    if sr != sample_rate:
        raise ValueError(f"timidity wrote {sr} Hz, asked for {sample_rate}")
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(n_samples, len(x))] = x[:n_samples]
    return out


def render(
    notes: list[tuple[float, float, int, int]],
    *,
    program: int,
    cfg: str,
    sample_rate: int,
    n_samples: int,
    velocity_gains: tuple[tuple[int, float], ...] = (),
    key_gains: tuple[tuple[int, float], ...] = (),
) -> np.ndarray:
    """Play (onset_s, duration_s, key, velocity) notes -> mono float32 [n_samples].

    Notes are grouped by their correction (``velocity_gains`` band + ``key_gains`` drum key, see
    :func:`keras_inst.corpus.gains.split_gains`); each group is one timidity run, scaled.
    """
    from keras_inst.corpus.gains import split_gains

    out = np.zeros(n_samples, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="keras_inst_timidity_") as d:
        for gain_db, part in split_gains(notes, velocity_gains, key_gains):
            out += np.float32(10 ** (gain_db / 20)) * _render_once(part, program, cfg, sample_rate, n_samples, Path(d))
    return out
