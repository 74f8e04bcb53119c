"""Audio cache format: the index file is replaced atomically (a torn write keeps the old one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cache_corpus import GOOD, SR, build, corpus_songs, write_corpus

from keras_inst.data.cache.store import open_cache


@pytest.fixture()
def corpus(tmp_path: Path) -> dict[str, Path]:
    return write_corpus(tmp_path / "audio")


def test_index_write_failure_keeps_previous_index(corpus, tmp_path, monkeypatch):
    songs, cdir = corpus_songs(corpus, GOOD), tmp_path / "c"
    build(songs, cdir)
    index_path = cdir / f"sr{SR}" / "index.json"
    before = index_path.read_bytes()
    sf.write(corpus["wav22"], np.zeros(2205, np.float32), 22050)

    real_write_text = Path.write_text

    def torn_write(self, text, *a, **kw):
        if self.name.startswith(".index.json.tmp-"):
            real_write_text(self, text[:20], *a, **kw)  # killed halfway through writing
            raise KeyboardInterrupt
        return real_write_text(self, text, *a, **kw)

    monkeypatch.setattr(Path, "write_text", torn_write)
    with pytest.raises(KeyboardInterrupt):
        build(songs, cdir)
    monkeypatch.undo()
    assert index_path.read_bytes() == before and not list(index_path.parent.glob("*index.json.tmp*"))
    assert len(open_cache(cdir, sample_rate=SR)) == 4
    assert build(songs, cdir).built == 1  # the changed stem is rebuilt on the next run
    assert len(list((cdir / f"sr{SR}" / "stems").iterdir())) == 8
