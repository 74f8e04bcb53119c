"""The one place each name set lives: backbones, pre-trained weights, datasets.

Config validation (:mod:`keras_inst.config.schema`) asks these registries which names are valid,
and the code that builds or reads things asks them what a name means, so adding an entry (e.g.
:func:`register_backbone`) makes the name a valid config value everywhere at once.

The config package is the bottom layer and must not import models/ or data/, so an entry is
either the object itself or a ``"module:attribute"`` string (``"module"`` alone for a module)
that is imported on first :meth:`Registry.get`; validating a name never imports anything.

* :data:`BACKBONES`: ``model.architecture`` -> builder ``builder(cfg, *, frames) -> keras.Model``
  named ``backbone``, log-mel ``[B, n_mels, frames]`` -> embedding ``[B, C]``.
* :data:`PRETRAINED`: ``training.pretrained`` -> a :class:`keras_inst.models.pretrained.PretrainedSpec`
  (the config values the weights need, and the loader that copies them into a backbone).
* :data:`DATASETS`: ``data.datasets`` / ``data.roots`` keys -> reader module (``read(root, *,
  report, dataset, require_audio, ...) -> list[Song]``, see :mod:`keras_inst.data.datasets`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any


class Registry:
    """Names of one kind -> entries, resolved lazily from ``"module:attribute"`` strings."""

    def __init__(self, kind: str, key: str, entries: dict[str, Any]) -> None:
        self.kind = kind  # "backbone": used in messages
        self.key = key  # the config key whose values these are, e.g. "model.architecture"
        self._entries: dict[str, Any] = dict(entries)

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def register(self, name: str, entry: Any) -> None:
        """Add ``name`` (or replace its entry): an object or a ``"module:attribute"`` string."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for plug-ins and tests that registered a temporary entry)."""
        self.check(name)
        del self._entries[name]

    def check(self, name: object, key: str | None = None) -> None:
        """Raise ValueError naming the config key and the known names unless ``name`` is known."""
        if name not in self._entries:
            raise ValueError(f"config key '{key or self.key}': unknown {self.kind} {name!r}; "
                             f"known: {', '.join(self._entries)}")

    def get(self, name: str) -> Any:
        """The entry of ``name``, importing it on first use when it is a ``"module:attr"`` string."""
        self.check(name)
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = _resolve(entry, f"config key '{self.key}': {self.kind} {name!r}")
            self._entries[name] = entry
        return entry


def _resolve(ref: str, what: str) -> Any:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr) if attr else module
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{what} is provided by {ref!r}, which is not available ({e})") from None


BACKBONES = Registry("backbone", "model.architecture", {
    "short_chunk_cnn": "keras_inst.models.short_chunk:build_short_chunk_cnn",
    "short_chunk_res": "keras_inst.models.short_chunk:build_short_chunk_res",
    "musicnn_vgg": "keras_inst.models.pretrained:build_musicnn_vgg_backbone",
    "musicnn": "keras_inst.models.musicnn_cnn:build_musicnn_cnn_backbone",
})

PRETRAINED = Registry("pre-trained weights", "training.pretrained", {
    "short_chunk_cnn": "keras_inst.models.pretrained:SHORT_CHUNK_CNN",
    "musicnn_msd_vgg": "keras_inst.models.pretrained:MUSICNN_MSD_VGG",
    "musicnn_mtt_vgg": "keras_inst.models.pretrained:MUSICNN_MTT_VGG",
    "musicnn_mtt_musicnn": "keras_inst.models.musicnn_cnn:MUSICNN_MTT_MUSICNN",
    "musicnn_msd_musicnn": "keras_inst.models.musicnn_cnn:MUSICNN_MSD_MUSICNN",
    # the model shipped in the package (keras_inst/release/, `keras-inst release --install`):
    # backbone and 15-way head, for fine-tuning on one's own multitracks
    "keras_inst_release": "keras_inst.runtime.release_weights:KERAS_INST_RELEASE",
})

# "rendered" is the embedded corpus, written in Slakh's layout and read by the Slakh reader.
DATASETS = Registry("dataset", "data.datasets", {
    "medleydb": "keras_inst.data.datasets.medleydb",
    "mixing_secrets": "keras_inst.data.datasets.mixing_secrets",
    "slakh": "keras_inst.data.datasets.slakh",
    "mtg_jamendo": "keras_inst.data.datasets.mtg_jamendo",
    "rendered": "keras_inst.data.datasets.slakh",
})


def register_backbone(name: str, builder: Callable[..., Any] | str) -> None:
    """Make ``model.architecture: name`` valid and built by ``builder(cfg, *, frames)``."""
    BACKBONES.register(name, builder)


def register_pretrained(name: str, spec: Any) -> None:
    """Make ``training.pretrained: name`` valid; ``spec`` is a ``PretrainedSpec`` (or its
    ``"module:attr"``), see :mod:`keras_inst.models.pretrained`."""
    PRETRAINED.register(name, spec)


def register_dataset(name: str, reader: Any) -> None:
    """Make ``name`` a valid dataset, read by ``reader`` (a module or ``"module"`` string with
    ``read(root, *, report, dataset, require_audio) -> list[Song]``)."""
    DATASETS.register(name, reader)
