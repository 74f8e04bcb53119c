"""Hydrogen drum kits: drumkit.xml parsing (layered and legacy), GM key map, velocity layers,
Hydrogen's gain law and hi-hat choke, on a tiny kit written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_inst.corpus.hydrogen import gm_key_map, load_kit, render_hits

SR = 16000
_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>Tiny</name><license>CC0</license>
 <instrumentList>
  <instrument><id>0</id><name>Kick</name><volume>0.5</volume><gain>1</gain><muteGroup>-1</muteGroup>
   <layer><filename>soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
   <layer><filename>hard.wav</filename><min>0.5</min><max>1</max><gain>0.8</gain></layer>
  </instrument>
  <instrument><id>1</id><name>Snare Rock</name><volume>1</volume><filename>snare.wav</filename></instrument>
  <instrument><id>2</id><name>Closed HH</name><volume>1</volume><muteGroup>1</muteGroup>
   <layer><filename>hat.wav</filename><min>0</min><max>1</max><gain>1</gain></layer></instrument>
  <instrument><id>3</id><name>Open HH</name><volume>1</volume><muteGroup>1</muteGroup>
   <layer><filename>open.wav</filename><min>0</min><max>1</max><gain>1</gain></layer></instrument>
  <instrument><id>4</id><name>Tom Hi</name><volume>1</volume>
   <layer><filename>tom.wav</filename><min>0</min><max>1</max><gain>1</gain></layer></instrument>
  <instrument><id>5</id><name>Floor Tom</name><volume>1</volume>
   <layer><filename>tom.wav</filename><min>0</min><max>1</max><gain>1</gain></layer></instrument>
  <instrument><id>6</id><name>Ghost</name><volume>1</volume>
   <layer><filename>missing.wav</filename><min>0</min><max>1</max><gain>1</gain></layer></instrument>
 </instrumentList>
</drumkit_info>
"""


@pytest.fixture(scope="module")
def kit_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("kit")
    (d / "drumkit.xml").write_text(_XML)
    for name, value, rate in (("soft", 0.1, SR), ("hard", 0.5, 2 * SR), ("snare", 0.3, SR), ("hat", 0.2, SR),
                              ("open", 0.4, SR), ("tom", 0.25, SR)):
        sf.write(d / f"{name}.wav", np.full(rate // 2, value, dtype=np.float32), rate, subtype="FLOAT")  # 0.5 s DC
    return d


def test_parse_and_key_map(kit_dir):
    kit = load_kit(kit_dir)
    assert (kit.name, kit.license) == ("Tiny", "CC0")
    assert [i.name for i in kit.instruments] == ["Kick", "Snare Rock", "Closed HH", "Open HH", "Tom Hi", "Floor Tom"]
    kick = kit.instruments[0]
    assert kick.gain == 0.5 and [(la.vmin, la.vmax, la.gain) for la in kick.layers] == [(0, 0.5, 1), (0.5, 1, 0.8)]
    assert kit.instruments[1].layers[0].path.name == "snare.wav"  # legacy one-file instrument
    keys = {k: kit.instruments[i].name for k, i in gm_key_map(kit).items()}
    assert keys == {36: "Kick", 38: "Snare Rock", 42: "Closed HH", 46: "Open HH",
                    41: "Floor Tom", 43: "Floor Tom", 45: "Floor Tom", 47: "Tom Hi", 48: "Tom Hi", 50: "Tom Hi"}
    with pytest.raises(ValueError, match="no drumkit.xml"):
        load_kit(kit_dir / "nope")


def test_velocity_layers_gain_law_and_choke(kit_dir):
    kit = load_kit(kit_dir)
    n = SR
    soft = render_hits(kit, [(0.0, 0.1, 36, 40)], sample_rate=SR, n_samples=n)
    hard = render_hits(kit, [(0.0, 0.1, 36, 127)], sample_rate=SR, n_samples=n)
    # Hydrogen: amplitude = velocity/127 * layer gain * instrument volume * gain
    assert soft[100] == pytest.approx(40 / 127 * 1.0 * 0.5 * 0.1, rel=1e-5)
    assert hard[100] == pytest.approx(1.0 * 0.8 * 0.5 * 0.5, rel=1e-4)  # 32 kHz layer resampled: 0.5 s long
    assert np.all(hard[int(0.6 * SR) :] == 0.0)
    # the closed hat at 0.2 s chokes the open hat (same mute group) within 10 ms, not the snare
    x = render_hits(kit, [(0.0, 0.1, 46, 127), (0.0, 0.1, 38, 127), (0.2, 0.1, 42, 127)], sample_rate=SR, n_samples=n)
    assert x[int(0.1 * SR)] == pytest.approx(0.4 + 0.3, rel=1e-5)
    assert x[int(0.25 * SR)] == pytest.approx(0.3 + 0.2, rel=1e-5)
    with pytest.raises(ValueError, match=r"GM drum keys \[49\]"):
        render_hits(kit, [(0.0, 0.1, 49, 100)], sample_rate=SR, n_samples=n)
    quiet = render_hits(kit, [(0.0, 0.1, 36, 40)], sample_rate=SR, n_samples=n, velocity_gains=((52, -6.0), (127, 0.0)))
    assert quiet[100] == pytest.approx(soft[100] * 10 ** (-6 / 20), rel=1e-5)
