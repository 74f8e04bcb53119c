"""Mixing Secrets reader: the MedleyDB-format release of the Cambridge-MT multitracks.

The metadata (SiddGururani/mixing_secrets) is MedleyDB's ``<Song>_METADATA.yaml`` format with
lower-cased labels from its own vocabulary; ``instrument`` may be a list (a stem recorded with
several instruments, e.g. an acoustic guitar with vocals). Stem file names come from the
metadata and are often the original multitrack names (``19_BackingVox03.wav``) inside
``<Song>_STEMS/``. Audio lies in ``<root>/<Song>/`` (as built by the dataset's scripts) or in
``<root>/Audio/<Song>/``; metadata in ``<root>/metadata/``, ``<root>/Metadata/`` or the song
folders. The raw tracks' ``instrument`` fields are free-form track names ('BackingVox',
'DrumMic'), so with ``include_raw`` raw tracks take their stem's labels.
"""

from __future__ import annotations

from keras_inst.data.datasets.medleydb import multitrack_reader

# raw tracks take their stem's labels (their instrument fields are free-form track names)
read = multitrack_reader("mixing_secrets", raw_labels="stem")
