"""The pipe-organ source (GrandOrgue sample sets, keras_inst.corpus.organ): the reader on a tiny
organ written by the test (WAV pipes with smpl loops and cue points, in a zip and in a folder),
pitch, sustain, release and voicing of played notes, the registration draw, the opt-in gate and
the stem metadata; then the same checks on Debian's grandorgue-demo where it is installed."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from keras_inst.corpus import organ as O
from keras_inst.corpus import sources as S

SR = 16000
RATE = 22050  # the tiny organ's file rate: resampled to SR like the demo's 44.1 kHz
ALL_STOPS = sorted({*(s for stops in O.PROGRAM_STOPS.values() for s in stops), O.MIXTURE_STOP})


def f0_cents(x: np.ndarray, key: float, sr: int = SR) -> float:
    """Deviation in cents of the f0 of ``x`` (YIN: cumulative-mean-normalised difference, first
    dip under 0.15, parabolic interpolation) from MIDI ``key``."""
    x = x - x.mean()
    w = len(x) // 2
    lags = np.arange(int(sr / 3000), int(sr / 40))
    d = np.array([np.sum((x[:w] - x[lag : lag + w]) ** 2) for lag in lags])
    cm = d / (np.cumsum(d) / np.arange(1, len(d) + 1))
    i = int(np.argmax(cm < 0.15)) if np.any(cm < 0.15) else int(np.argmin(cm))
    while i + 1 < len(cm) and cm[i + 1] < cm[i]:
        i += 1
    a, b, c = cm[i - 1], cm[i], cm[i + 1]
    f0 = sr / (lags[i] + 0.5 * (a - c) / (a - 2 * b + c))
    return 100 * (69 + 12 * np.log2(f0 / 440) - key)


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def pipe_wav(pitch: float, amp: float, *, smpl: bool = True) -> tuple[bytes, float]:
    """A recorded-pipe WAV (16-bit mono at RATE): 0.1 s attack, a steady tone whose loop
    (0.4..0.9 s) holds a whole number of periods, a cue at 1.0 s and a 0.4 s decaying release.
    Returns (file bytes, the tone's exact pitch: the loop rounds the period)."""
    n_periods = round(0.5 * 440 * 2 ** ((pitch - 69) / 12))
    loop = (int(0.4 * RATE), int(0.4 * RATE) + round(n_periods * RATE / (440 * 2 ** ((pitch - 69) / 12))))
    freq = n_periods * RATE / (loop[1] - loop[0])  # exactly periodic over the loop
    exact = 69 + 12 * np.log2(freq / 440)
    t = np.arange(int(1.4 * RATE)) / RATE
    tone = sum(a * np.sin(2 * np.pi * h * freq * t) for h, a in ((1, 1.0), (2, 0.5), (3, 0.25)))
    env = np.minimum(1.0, t / 0.1) * np.where(t < 1.0, 1.0, np.exp(-(t - 1.0) / 0.08))
    pcm = np.round(amp * 0.5 * tone * env * 32767).astype("<i2").tobytes()
    unity = int(np.floor(exact))
    chunks = [(b"fmt ", struct.pack("<HHIIHH", 1, 1, RATE, 2 * RATE, 2, 16))]
    if smpl:  # manufacturer, product, period, unity, fraction, SMPTE x2, 1 loop, 0 extra; loop 1
        chunks.append((b"smpl", struct.pack("<9I", 0, 0, 0, unity, int((exact - unity) * 2**32), 0, 0, 1, 0)
                       + struct.pack("<6I", 0, 0, loop[0], loop[1] - 1, 0, 0)))
    chunks += [(b"cue ", struct.pack("<I6I", 1, 1, 0, 0x61746164, 0, 0, RATE)), (b"data", pcm)]
    body = b"WAVE" + b"".join(c + struct.pack("<I", len(d)) + d + b"\0" * (len(d) & 1) for c, d in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body, exact


def _members() -> dict[str, tuple[bytes, float]]:
    """Two pipes (F#3, G3) per stop; the 2' sounds two octaves up; key 55 recorded 20 dB softer."""
    out = {}
    for stop in ALL_STOPS:
        up = 24 if stop == O.MIXTURE_STOP else 0
        for key, name, amp in ((54, "F#", 0.5), (55, "G", 0.05)):
            out[f"{stop}/{key:03d}-{name}.wav"] = pipe_wav(key + up + 0.1, amp)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(zip path, folder path, {member: exact pitch}) of a tiny organ in the demo's layout."""
    d = tmp_path_factory.mktemp("organ")
    members = _members()
    with zipfile.ZipFile(d / "tiny.orgue", "w") as z:
        for name, (data, _) in members.items():
            z.writestr(name, data)
        z.writestr("Sounds/Motor.wav", members["Montre8/054-F#.wav"][0])  # not a pipe
        z.writestr("tiny.organ", "[Organ]\n")
    with zipfile.ZipFile(d / "tiny.orgue") as z:
        z.extractall(d / "unpacked")
    return str(d / "tiny.orgue"), str(d / "unpacked"), {n: p for n, (_, p) in members.items()}


# ------------------------------------------------------------------ the reader


def test_reader_indexes_pipes_of_a_zip_and_a_folder(tiny):
    zpath, folder, pitches = tiny
    organ = O.load_organ(zpath)
    assert sorted(organ) == ALL_STOPS and organ["Montre8"] == {54: "Montre8/054-F#.wav", 55: "Montre8/055-G.wav"}
    assert O.load_organ(folder) == organ and O.playable(zpath) and O.playable(folder)
    assert O.load_organ(str(tiny[0]) + ".missing") == {} and O.stop_feet("Octavin2") == 2 and O.stop_feet("X") == 8
    pipe = O.load_pipe(zpath, "Octavin2/054-F#.wav", SR)
    assert pipe.pitch == pytest.approx(pitches["Octavin2/054-F#.wav"], abs=1e-6)  # unity + fraction: 78.1
    assert pipe.loop[0] == pytest.approx(0.4 * SR) and pipe.release == pytest.approx(1.0 * SR)
    assert len(pipe.audio) == pytest.approx(1.4 * SR, abs=2) and pipe.loop_db == pytest.approx(10 * np.log10(0.25**2 * 1.3125 / 2), abs=0.2)


def test_reader_refuses_bad_files_naming_them(tiny, tmp_path):
    no_loop, _ = pipe_wav(60.0, 0.5, smpl=False)
    with pytest.raises(ValueError, match=r"x\.orgue:S8/060-C\.wav: missing RIFF chunk\(s\) \['smpl'\]"):
        O.read_pipe_file(no_loop, "x.orgue:S8/060-C.wav")
    with pytest.raises(ValueError, match="neither WAV nor WavPack"):
        O.read_pipe_file(b"OggS" + b"\0" * 40, "y.wav")
    odd = tmp_path / "odd.orgue"
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("Flute8/060-C.wav", no_loop)
    with pytest.raises(ValueError, match="no stop.*Montre8"):
        O.render_registration([(0.0, 0.5, 60, 90)], O.Registration("Montre8", ("Montre8",)), root=str(odd),
                              sample_rate=SR, n_samples=SR)


@pytest.mark.skipif(not (shutil.which("wavpack") and shutil.which("wvunpack")), reason="Debian wavpack not installed")
def test_wavpack_pipes_decode_to_the_same_samples(tmp_path):
    data, _ = pipe_wav(57.3, 0.5)
    (tmp_path / "p.wav").write_bytes(data)
    subprocess.run(["wavpack", "-q", "-y", str(tmp_path / "p.wav"), "-o", str(tmp_path / "p.wv")], check=True)
    packed = (tmp_path / "p.wv").read_bytes()
    assert packed[:4] == b"wvpk"
    a, b = O.read_pipe_file(data, "p.wav"), O.read_pipe_file(packed, "p.wv")
    assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]  # lossless, smpl/cue kept



@pytest.mark.parametrize("error", [subprocess.TimeoutExpired(["wvunpack"], 120), PermissionError("not executable")])
def test_a_hung_or_unrunnable_wvunpack_is_an_error_naming_the_file(monkeypatch, error):
    def run(*args, **kwargs):
        assert kwargs.get("timeout")  # never waits for ever
        raise error

    monkeypatch.setattr(O.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(O.subprocess, "run", run)
    with pytest.raises(ValueError, match=r"S8/060-C\.wv: wvunpack failed"):
        O.read_pipe_file(b"wvpk" + b"\0" * 40, "S8/060-C.wv")

# ------------------------------------------------------------------ playing


def _play(root: str, stops: tuple[str, ...], notes, n: float = 3.0, **kw) -> np.ndarray:
    return O.render_registration(notes, O.Registration("+".join(stops), stops), root=root, sample_rate=SR,
                                 n_samples=int(n * SR), **kw)


def test_pitch_of_recorded_and_shifted_keys(tiny):
    root = tiny[0]
    for key in (54, 55, 58, 50):  # recorded; 3 over G3 and 4 under F#3 (the nearest pipes)
        x = _play(root, ("Montre8",), [(0.0, 1.5, key, 90)])
        assert abs(f0_cents(x[int(0.5 * SR) : int(0.5 * SR) + 4096], key)) < 2.0, key
    up = _play(root, ("Octavin2",), [(0.0, 1.5, 50, 90)])  # the 2' sounds two octaves over the key
    assert abs(f0_cents(up[int(0.5 * SR) : int(0.5 * SR) + 4096], 74)) < 3.0


def test_a_held_note_sustains_then_releases(tiny):
    x = _play(tiny[0], ("Bourdon8",), [(0.2, 2.0, 54, 90)], n=4.0)  # held over four loop passes
    held = [rms_db(x[a : a + SR // 10]) for a in range(int(0.5 * SR), int(2.1 * SR), SR // 10)]
    assert max(held) - min(held) < 0.5 and np.mean(held) == pytest.approx(O.PIPE_RMS_DB, abs=0.5)
    assert rms_db(x[int(2.45 * SR) : int(2.55 * SR)]) < np.mean(held) - 12  # 0.25 s after the note-off
    assert np.max(np.abs(x[int((2.2 + O.RELEASE_S) * SR) + 2 :])) == 0.0
    assert np.max(np.abs(x[: int(0.2 * SR)])) == 0.0


def test_voicing_levels_each_pipe_and_velocity_only_picks_the_gain(tiny):
    root = tiny[0]
    loud, soft = (_play(root, ("Montre8",), [(0.0, 1.5, k, 90)]) for k in (54, 55))  # recorded 20 dB apart
    assert rms_db(loud[SR // 2 : SR]) == pytest.approx(rms_db(soft[SR // 2 : SR]), abs=0.3)
    both = _play(root, ("Montre8", "Octavin2"), [(0.0, 1.5, 54, 90)])
    two = _play(root, ("Octavin2",), [(0.0, 1.5, 54, 90)])
    assert rms_db(two[SR // 2 : SR]) == pytest.approx(O.PIPE_RMS_DB + O.UPPERWORK_DB, abs=0.5)
    assert np.allclose(both, loud + two, atol=1e-6)
    assert np.array_equal(_play(root, ("Montre8",), [(0.0, 1.5, 54, 30)]), loud)  # no velocity response
    gained = _play(root, ("Montre8",), [(0.0, 1.5, 54, 30)], velocity_gains=((52, -6.0), (127, 0.0)))
    assert np.allclose(gained, loud * 10 ** (-6 / 20), atol=1e-6)


def test_registrations_are_seeded_and_fit_the_program():
    for prog, pool in O.PROGRAM_STOPS.items():
        regs = [O.registration_for(prog, seed) for seed in range(200)]
        assert regs == [O.registration_for(prog, seed) for seed in range(200)]
        used = {s for r in regs for s in r.stops}
        assert used - {O.MIXTURE_STOP} == set(pool)  # every stop of the pool, nothing else
        assert (O.MIXTURE_STOP in used) == (prog != 20)  # no 2' on the reed organ (harmonium)
        assert all(r.name == "+".join(r.stops) and 1 <= len(r.stops) <= 3 for r in regs)
    with pytest.raises(ValueError, match="GM organ programs"):
        O.registration_for(0, 1)


# ------------------------------------------------------------------ the source: gate and metadata


@pytest.fixture
def as_demo(tiny, monkeypatch):
    """The tiny organ stands in for grandorgue_demo (installed or not)."""
    real = S.resolve_path
    monkeypatch.setattr(S, "resolve_path", lambda s: Path(tiny[0]) if s.name == "grandorgue_demo" else real(s))
    return tiny[0]


def test_the_organ_joins_only_opt_in_renders(as_demo):
    assert "grandorgue_demo" not in {s.name for s in S.discover().available}
    found = S.discover(modern=True)
    assert "grandorgue_demo" in {s.name for s in S.candidates(found, 19)}
    assert not any("grandorgue_demo" in {s.name for s in S.candidates(found, p)} for p in (0, 15, 21, 128))
    drawn = [S.draw_source(found, track_seed=t, stem_index=0, program=19).name for t in range(300)]
    share = drawn.count("grandorgue_demo") / 300
    assert share == pytest.approx(2 / (2 + len(S.candidates(found, 19)) - 1), abs=0.07)  # weight 2
    audio, preset = S.play(S.get("grandorgue_demo"), as_demo, [(0.0, 0.5, 60, 90)], program=19,
                           sample_rate=SR, n_samples=SR, seed=7)
    reg = O.registration_for(19, 7)
    assert preset == reg.name and S.drawn_details(S.get("grandorgue_demo"), 19, 7) == {
        "registration": {"name": reg.name, "stops": list(reg.stops)}}
    assert rms_db(audio[SR // 4 : SR // 2]) > -30


def _organ_seed(found: S.Discovery) -> int:
    """A corpus seed whose first track has an organ stem drawn to the pipe organ."""
    from keras_inst.corpus.plans import plan_corpus

    for seed in range(300):
        plan = plan_corpus(1, seed)[0]
        for i, sp in enumerate(plan.stems):
            if sp.program in S.ORGAN_PROGRAMS and S.draw_source(
                    found, track_seed=plan.seed, stem_index=i, program=sp.program).name == "grandorgue_demo":
                return seed
    raise AssertionError("no seed in 0..299 draws the organ")


def test_render_records_the_registration_and_labels_the_organ_a_keyboard(as_demo, tmp_path):
    from keras_inst.corpus.render import render_corpus
    from keras_inst.taxonomy import classes_for

    names = "timgm6mb,sung_vowels,grandorgue_demo"
    seed = _organ_seed(S.discover(names, modern=True))
    render_corpus(tmp_path / "c", songs=1, seed=seed, workers=1, progress=False, max_seconds=4.0, sources=names,
                  modern=True)
    track = next((tmp_path / "c").glob("Track*"))
    meta = yaml.safe_load((track / "metadata.yaml").read_text())
    organ = [(sid, st) for sid, st in meta["stems"].items() if meta["keras_inst"]["stems"][sid]["source"] == "grandorgue_demo"]
    assert organ, meta["stems"]
    for sid, st in organ:
        extra = meta["keras_inst"]["stems"][sid]
        reg = extra["registration"]
        assert st["plugin_name"] == f"grandorgue_demo:{reg['name']}" and reg["stops"] == reg["name"].split("+")
        assert st["program_num"] in S.ORGAN_PROGRAMS and st["inst_class"] == "Organ"
        assert classes_for("slakh", st["program_num"]) == {"key"}
        x, _ = sf.read(str(track / "stems" / f"{sid}.flac"))
        assert np.max(np.abs(x)) > 0.01


# ------------------------------------------------------------------ Debian's grandorgue-demo


def _demo() -> str:
    path = S.resolve_path(S.get("grandorgue_demo"))
    if path is None:
        pytest.skip("grandorgue-demo / wavpack not installed (scripts/setup_sample_sets.sh)")
    return str(path)


@pytest.mark.parametrize("stop", ALL_STOPS)
def test_demo_stops_play_in_tune_and_sustain(stop):
    """Every demo stop at a recorded key (G3; the 2': G2) and at keys 5-6 semitones from any pipe
    (C4, C5; the 2': C3 and its G3, sounding two octaves up): f0 within 3 cents (measured <= 1.5 on the 8' stops), the held
    level flat within 3 dB once the pipe has spoken (measured over 91 stop x key pairs: median
    0.6 dB, 7 dB where the harmonic flute's recording itself swells), and 6+ dB down 0.3 s after
    the note-off (median 21 dB)."""
    root = _demo()
    up = 24 if stop == O.MIXTURE_STOP else 0
    for key in (43, 48, 55) if up else (55, 60, 72):  # the 2' sounds 67, 72, 79 (f0 under 3 kHz)
        x = _play(root, (stop,), [(0.1, 2.0, key, 90)], n=3.5)
        assert abs(f0_cents(x[SR : SR + 4096], key + up)) < 3.0, (stop, key)
        held = [rms_db(x[a : a + SR // 10]) for a in range(int(1.1 * SR), int(2.1 * SR), SR // 10)]
        assert max(held) - min(held) < 3.0, (stop, key, np.round(held, 1))
        assert rms_db(x[int(2.4 * SR) : int(2.5 * SR)]) < np.mean(held) - 6, (stop, key)
        assert np.max(np.abs(x[int((2.1 + O.RELEASE_S) * SR) + 2 :])) == 0.0
