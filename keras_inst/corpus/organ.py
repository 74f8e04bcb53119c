"""A recorded pipe organ: GrandOrgue sample sets (Debian ``grandorgue-demo``) played per stop.

A GrandOrgue package (``.orgue``, a zip; or the same tree unpacked in a folder) holds one folder
per stop with one recorded pipe per file, ``<Stop><feet>/<MIDI key>-<name>.wav``
(``Montre8/054-F#.wav``; the demo has two pipes per octave, F# and G). The files are WAV or
WavPack-compressed WAV (they start with ``wvpk``; decoded at first use with Debian's ``wvunpack``,
kept in memory for the process: the whole demo decodes in 1.7 s). Each file's RIFF header carries
what playing it needs: the ``smpl`` chunk's unity note + pitch fraction (the pipe's *sounding*
pitch: a 2' stop's key-42 pipe sounds at 65.81, two octaves up; measured f0 within 4 cents of it on
all seven demo stops), its sustain loops, and a ``cue`` point where the recorded release
(the pipe's cut-off and the room) starts.

:func:`render_registration` plays (onset, duration, key, velocity) notes on a
:class:`Registration` (one to three stops, drawn per stem by :func:`draw_registration`): each
stop sounds ``key`` plus its footage (8' unison, 2' two octaves up) from the pipe nearest that
pitch, shifted by linear-interpolation resampling (the demo is at most 6 semitones from a pipe
inside its compass), holds the loop while the key is down and crossfades into the recorded
release at the note-off (``XFADE_S``), faded out over ``RELEASE_S``. Pipes do not respond to
velocity: the loudness is flat across velocities and :mod:`keras_inst.corpus.gains` gives the
stop the median velocity curve of the other organs, as for every source.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from keras_inst.corpus.gains import band_gain_db

XFADE_S = 0.03  # loop -> release crossfade at the note-off (GrandOrgue crossfades too)
# The recorded releases (the pipe's cut-off, then the room) fall 12 dB in 0.3 s (median; some
# hold for 0.2 s, one rises 7 dB: an echo) and ring for 1.5-3 s: a raised-cosine fade over
# RELEASE_S keeps the cut-off and shortens the room, like the GM banks' organs.
RELEASE_S = 0.6
# Voicing: the demo's recorded levels jump by up to 13 dB between neighbouring pipes of a stop
# (its .organ file evens them out per pipe), and stops differ by 25 dB (a Gamba against the
# Octavin). Each pipe's loop is brought to PIPE_RMS_DB (dBFS RMS), a stop above unison (the 2')
# UPPERWORK_DB lower: registrations are balanced and a melody keeps its level across pipes.
PIPE_RMS_DB = -20.0
UPPERWORK_DB = -6.0
_PIPE = re.compile(r"^([A-Za-z]+?)(\d+)?/(\d{3})-[A-G]#?\.wav$")  # Stop<feet>/<key>-<name>.wav
# GM organ programs -> the demo's 8' stops a registration draws from (and whether a 2' joins):
# the electric organs (drawbar, percussive, rock) take flue stops (flutes and the principal, the
# pipe counterparts of drawbars); the church organ any stop; the reed organ a reed stop.
FLUES = ("Bourdon8", "FlHarm8", "Montre8")
PROGRAM_STOPS: dict[int, tuple[str, ...]] = {
    16: FLUES, 17: FLUES, 18: FLUES,
    19: ("Bourdon8", "FlHarm8", "Gamba8", "Hautbois8", "Montre8", "Trompette8"),
    20: ("Hautbois8", "Trompette8"),
}
MIXTURE_STOP = "Octavin2"  # added to a registration with probability P_MIXTURE (not the reed organ)
P_MIXTURE = 0.35


@dataclass(frozen=True)
class Pipe:
    """One recorded pipe at the render rate: mono float32 [n], its sounding pitch (MIDI, fractional),
    the sustain loop [start, end) and the release start, in samples (fractional after resampling),
    and the loop's RMS level (dBFS)."""

    audio: np.ndarray
    pitch: float
    loop: tuple[float, float]
    release: float | None
    loop_db: float


@dataclass(frozen=True)
class Registration:
    """Stops drawn for one stem (recorded in its metadata)."""

    name: str  # "Montre8+Octavin2"
    stops: tuple[str, ...]


# ------------------------------------------------------------------ reading the sample set


def _read_bytes(root: str, member: str) -> bytes:
    if Path(root).is_dir():
        return (Path(root) / member).read_bytes()
    with zipfile.ZipFile(root) as z:
        return z.read(member)


@lru_cache(maxsize=4)
def load_organ(root: str) -> dict[str, dict[int, str]]:
    """{stop: {MIDI key: member}} of a ``.orgue`` zip or an unpacked organ folder ({} if none).

    Files that are not pipes (``Sounds/Motor.wav``, images, the ``.organ`` definition) are skipped.
    """
    p = Path(root)
    if p.is_dir():
        names = [f.relative_to(p).as_posix() for f in sorted(p.glob("*/*")) if f.is_file()]
    elif zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            names = sorted(z.namelist())
    else:
        return {}
    stops: dict[str, dict[int, str]] = {}
    for name in names:
        m = _PIPE.match(name)
        if m:
            stops.setdefault(name.split("/")[0], {})[int(m.group(3))] = name
    return stops


def stop_feet(stop: str) -> int:
    """A stop's footage from its folder name (``Octavin2`` -> 2); 8 (unison) when it has none."""
    m = re.search(r"(\d+)$", stop)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else 8


def _unpack(data: bytes, where: str) -> bytes:
    """RIFF bytes of a WAV or WavPack file (``wvunpack`` restores the original header)."""
    if data[:4] == b"RIFF":
        return data
    if data[:4] != b"wvpk":
        raise ValueError(f"{where}: neither WAV nor WavPack (starts with {data[:4]!r})")
    if shutil.which("wvunpack") is None:
        raise ValueError(f"{where}: WavPack-compressed; install Debian's wavpack (wvunpack) to decode it")
    try:
        done = subprocess.run(["wvunpack", "-q", "-y", "-", "-o", "-"], input=data, capture_output=True, check=False,
                              timeout=120)
    except (subprocess.TimeoutExpired, OSError) as e:  # hung or unrunnable: a reported failure, not a stopped render
        raise ValueError(f"{where}: wvunpack failed ({e})") from e
    if done.returncode != 0 or done.stdout[:4] != b"RIFF":
        raise ValueError(f"{where}: wvunpack failed ({done.stderr.decode(errors='replace').strip()[:200]})")
    return done.stdout


def _chunks(riff: bytes, where: str) -> dict[bytes, bytes]:
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise ValueError(f"{where}: not a RIFF/WAVE file")
    out, pos = {}, 12
    while pos + 8 <= len(riff):
        cid, size = riff[pos : pos + 4], struct.unpack("<I", riff[pos + 4 : pos + 8])[0]
        out.setdefault(cid, riff[pos + 8 : pos + 8 + size])
        pos += 8 + size + (size & 1)
    missing = [c.decode() for c in (b"fmt ", b"data", b"smpl") if c not in out]
    if missing:
        raise ValueError(f"{where}: missing RIFF chunk(s) {missing} (a pipe needs its smpl loop and pitch)")
    return out


def _pcm(fmt: bytes, data: bytes, where: str) -> tuple[np.ndarray, int]:
    """(mono float32 [n], sample rate) of 16/24-bit PCM or 32-bit float data."""
    tag, channels, rate = struct.unpack("<HHI", fmt[:8])
    bits = struct.unpack("<H", fmt[14:16])[0]
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes are the tag
        tag = struct.unpack("<H", fmt[24:26])[0]
    if tag == 1 and bits == 16:
        x = np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(data[: len(data) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
    elif tag == 3 and bits == 32:
        x = np.frombuffer(data[: len(data) // 4 * 4], "<f4").astype(np.float32)
    else:
        raise ValueError(f"{where}: unsupported WAV format (tag {tag}, {bits} bits)")
    return x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1), int(rate)


def read_pipe_file(data: bytes, where: str) -> tuple[np.ndarray, int, float, tuple[int, int], int | None]:
    """(mono audio, rate, sounding pitch, first loop (start, end), release cue or None) of one file."""
    ch = _chunks(_unpack(data, where), where)
    audio, rate = _pcm(ch[b"fmt "], ch[b"data"], where)
    smpl = ch[b"smpl"]
    unity, fraction, n_loops = struct.unpack("<II", smpl[12:20]) + struct.unpack("<I", smpl[28:32])
    if n_loops < 1 or len(smpl) < 60:
        raise ValueError(f"{where}: the smpl chunk holds no loop (a held note needs one)")
    start, end = struct.unpack("<II", smpl[44:52])  # loop 1: id, type, start, end (inclusive), ...
    if not 0 <= start < end < len(audio):
        raise ValueError(f"{where}: loop {start}..{end} outside the {len(audio)} samples")
    cue = ch.get(b"cue ")
    release = None
    if cue and struct.unpack("<I", cue[:4])[0] >= 1:
        release = struct.unpack("<I", cue[24:28])[0]  # first cue point's sample offset
        release = release if end < release < len(audio) else None
    return audio, rate, unity + fraction / 2**32, (start, end + 1), release


@lru_cache(maxsize=512)
def load_pipe(root: str, member: str, sample_rate: int) -> Pipe:
    """One pipe of an organ, at ``sample_rate`` (decoded and resampled once per process)."""
    from keras_inst.corpus.dsp import resample

    where = f"{root}:{member}"
    audio, rate, pitch, (ls, le), release = read_pipe_file(_read_bytes(root, member), where)
    scale = sample_rate / rate
    audio = resample(audio, rate, sample_rate).astype(np.float32, copy=False)
    loop_db = 10 * np.log10(np.mean(np.square(audio[int(ls * scale) : int(le * scale)], dtype=np.float64)) + 1e-20)
    audio = np.concatenate([audio, np.zeros(2, np.float32)])  # for _read's right neighbour
    return Pipe(audio, pitch, (ls * scale, le * scale), None if release is None else release * scale, float(loop_db))


# ------------------------------------------------------------------ playing


def draw_registration(program: int, rng: np.random.Generator) -> Registration:
    """One or two 8' stops for a GM organ program (16-20), plus the 2' with ``P_MIXTURE``."""
    if program not in PROGRAM_STOPS:
        raise ValueError(f"the pipe organ plays GM organ programs {sorted(PROGRAM_STOPS)}, not {program}")
    pool = PROGRAM_STOPS[program]
    n = 1 if len(pool) == 1 or rng.random() < 0.6 else 2
    stops = sorted(str(s) for s in rng.choice(pool, size=n, replace=False))
    if program != 20 and rng.random() < P_MIXTURE:
        stops.append(MIXTURE_STOP)
    return Registration("+".join(stops), tuple(stops))


def registration_for(program: int, seed: int) -> Registration:
    """The registration a stem played with ``seed`` draws (what :func:`render_registration` plays)."""
    return draw_registration(program, np.random.default_rng([seed, program, 0x06]))


def _positions(n: int, ratio: float, start: float, loop: tuple[float, float] | None) -> np.ndarray:
    """Read positions [n] from ``start`` at ``ratio`` samples per output sample, wrapped into ``loop``."""
    pos = start + np.arange(n) * ratio
    if loop is not None:
        ls, le = loop
        over = pos >= le
        pos[over] = ls + np.mod(pos[over] - ls, le - ls)
    return pos


def _read(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x`` (ending in two zeros, as :func:`load_pipe` pads it) at
    fractional ``pos`` (0 past the end): np.interp without its binary search over the grid."""
    i = np.minimum(pos.astype(np.int64), len(x) - 2)
    frac = np.minimum(pos - i, 1.0).astype(np.float32)
    return x[i] * (1 - frac) + x[i + 1] * frac


def play_pipe(pipe: Pipe, pitch: float, held: int, sample_rate: int) -> np.ndarray:
    """One pipe sounding ``pitch`` (MIDI) for ``held`` samples, then its release -> float32 [n]."""
    ratio = 2 ** ((pitch - pipe.pitch) / 12)
    x, xf = pipe.audio, int(XFADE_S * sample_rate)
    body = _read(x, _positions(held + xf, ratio, 0.0, pipe.loop))
    ramp = 0.5 * (1 - np.cos(np.pi * np.arange(xf) / xf))  # 0 -> 1
    n_fade = int(RELEASE_S * sample_rate)
    n_rel = 0 if pipe.release is None else int(min(n_fade, (len(x) - pipe.release) / ratio))
    if n_rel < xf:  # no recorded release: a raised-cosine fade over the crossfade
        body[held:] *= ramp[::-1]
        return body.astype(np.float32)
    rel = _read(x, _positions(n_rel, ratio, pipe.release, None))
    rel *= 0.5 * (1 + np.cos(np.pi * np.arange(n_rel) / n_fade))
    out = np.empty(held + n_rel)  # held loop | crossfade loop -> release | rest of the release
    out[:held] = body[:held]
    out[held : held + xf] = body[held:] * ramp[::-1] + rel[:xf] * ramp
    out[held + xf :] = rel[xf:]
    return out.astype(np.float32)


def render_registration(
    notes: list[tuple[float, float, int, int]],
    registration: Registration,
    *,
    root: str,
    sample_rate: int,
    n_samples: int,
    velocity_gains: tuple[tuple[int, float], ...] = (),
) -> np.ndarray:
    """Play (onset_s, duration_s, key, velocity) notes on the registration's stops -> mono float32 [n_samples].

    Velocity only selects the level correction band (pipes have no velocity response).
    """
    organ = load_organ(root)
    missing = [s for s in registration.stops if s not in organ]
    if missing:
        raise ValueError(f"{root}: no stop(s) {missing} in this organ (has {sorted(organ)})")
    out = np.zeros(n_samples, dtype=np.float32)
    for stop in registration.stops:
        shift = 12 * np.log2(8 / stop_feet(stop))  # a 2' sounds two octaves over the key
        level = PIPE_RMS_DB + (UPPERWORK_DB if shift > 0 else 0.0)
        pipes = [load_pipe(root, m, sample_rate) for _, m in sorted(organ[stop].items())]
        for on, dur, key, vel in notes:
            a = int(round(on * sample_rate))
            if a >= n_samples:
                continue
            pitch = key + shift
            pipe = min(pipes, key=lambda p: (abs(p.pitch - pitch), p.pitch))
            y = play_pipe(pipe, pitch, max(1, int(round(dur * sample_rate))), sample_rate)[: n_samples - a]
            out[a : a + len(y)] += 10 ** ((level - pipe.loop_db + band_gain_db(vel, velocity_gains)) / 20) * y
    return out


def playable(root: str) -> bool:
    """Whether ``root`` is an organ this machine can play: it has pipes, and ``wvunpack`` is
    installed where they are WavPack-compressed (read from the first pipe's first bytes)."""
    organ = load_organ(root)
    if not organ:
        return False
    first = next(iter(next(iter(organ.values())).values()))
    return _read_bytes(root, first)[:4] != b"wvpk" or shutil.which("wvunpack") is not None
