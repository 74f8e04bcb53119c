"""musicnn's own 50-tag taggers in Keras, and the zero-shot classifier built on their tags.

:func:`build_tagger` gives every musicnn checkpoint with its own tagging head (``TAGGERS``:
the names are those of ``training.pretrained``) as waveform ``[B, 47616]`` -> 50 tag
probabilities ``[B, 50]``, the tags in :func:`tag_names` order. :func:`zero_shot_classifier`
maps those tags to the project's 15 classes by hand (:data:`TAG_CLASSES`), with no training.

Both are assembled like :func:`keras_inst.models.short_chunk.build_model` (sub-models
``frontend`` -> ``backbone`` -> ``head`` -> sigmoid ``probabilities``), so the runtime's
:func:`~keras_inst.runtime.keras_model.model_info` and ``dual_output_model``, ``.keras`` saving
and the exports take them as they are. Their ``backbone`` output (the runtime's embeddings) is
what musicnn's own output layer reads: the penultimate features ``[B, 200]`` of a musicnn CNN,
VGG's flattened pool5 ``[B, 256]`` (musicnn's dense layer needs exactly 187 frames).

Input: 47616 samples = 186 hops at 16 kHz, so the project's centred front end gives musicnn's
187 frames (its ``input_length=3`` s). musicnn's extractor rounds the mel power to float16
before the log; this front end stays in float32.

Zero-shot classes. A class's probability is the *maximum* of its tags' probabilities (computed
as the sigmoid of the maximum tag logit: the same number, as the sigmoid is monotonic). The
maximum, not a noisy-or, because synonym tags ('vocal', 'vocals', 'singing') fire together: a
noisy-or would count one singer three times. Only tags that name an instrument or a voice count;
negations ('no vocals') and genres, moods or tempi ('rock', 'techno', 'beat') do not. An
instrument's tags also count for its family (an instrument implies its family). Classes that no
tag names (MTT: brass, electric_guitar, acoustic_guitar, electric_bass) have *no evidence*: the
model outputs probability 0 for them (never detected) and :func:`no_evidence_classes` lists
them, so scores leave them out rather than read 0 as "certainly absent".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from keras_inst.config.schema import (
    AudioConfig,
    ExperimentConfig,
    FeaturesConfig,
    ModelConfig,
    TrainingConfig,
)
from keras_inst.models.musicnn import MUSICNN_LABELS, read_checkpoint_variables
from keras_inst.models.musicnn_cnn import (
    assign_checkpoint,
    build_musicnn_cnn_backbone,
    load_musicnn_cnn_weights,
)
from keras_inst.models.pretrained import (
    MUSICNN_REQUIRED,
    build_musicnn_backbone,
    check_pretrained_config,
    load_musicnn_weights,
)
from keras_inst.models.short_chunk import build_frontend
from keras_inst.taxonomy import CLASSES, FAMILY_OF

TAGGER_FRAMES = 187  # musicnn's input length: 3 s
TAGGER_SAMPLES = (TAGGER_FRAMES - 1) * 256  # 47616: the centred front end gives 187 frames
NO_EVIDENCE_LOGIT = -1.0e4  # sigmoid -> 0.0 in float32; fits float16 exports


@dataclass(frozen=True)
class TaggerSpec:
    """One musicnn tagger: its checkpoint folder and Keras architecture."""

    checkpoint: str  # MTT_musicnn | MSD_musicnn | MTT_vgg | MSD_vgg
    architecture: str  # musicnn | musicnn_vgg

    @property
    def vocabulary(self) -> str:
        """'MTT' or 'MSD': whose 50 tags it outputs."""
        return self.checkpoint.split("_")[0]


TAGGERS: dict[str, TaggerSpec] = {
    "musicnn_mtt_musicnn": TaggerSpec("MTT_musicnn", "musicnn"),
    "musicnn_msd_musicnn": TaggerSpec("MSD_musicnn", "musicnn"),
    "musicnn_mtt_vgg": TaggerSpec("MTT_vgg", "musicnn_vgg"),
    "musicnn_msd_vgg": TaggerSpec("MSD_vgg", "musicnn_vgg"),
}

Group = tuple[tuple[str, ...], tuple[str, ...], str]  # (classes, tags, why)
_NAMES_NONE = "names no instrument or voice: a genre, style, era, mood, tempo or loudness"

# Every tag of each vocabulary, once: the classes it names ((): none, on purpose).
TAG_CLASSES: dict[str, tuple[Group, ...]] = {
    "MTT": (
        (("singer",), ("singing", "vocal", "vocals", "male vocal", "female vocal", "opera"),
         "a sung voice: MTT tags songs, whose 'vocals' are sung; opera is sung"),
        (("voice",), ("voice", "male voice", "female voice", "female", "male", "woman", "man"),
         "a voice, sung or spoken: the family only (as MTG-Jamendo's 'voice' in the taxonomy)"),
        (("voice",), ("choir", "choral"), "a choir is a voice ensemble, not a (solo) singer (taxonomy)"),
        (("drums",), ("drums",), ""),
        (("violin",), ("violin",), ""),
        (("bowed_string",), ("cello", "strings"), "'strings': a string section, bowed"),
        (("plucked_string",), ("guitar",), "acoustic or electric unknown: the family only"),
        (("plucked_string",), ("sitar", "harp"), ""),
        (("piano",), ("piano",), ""),
        (("key",), ("harpsichord",), "a keyboard instrument (the taxonomy's key family)"),
        (("woodwind",), ("flute",), ""),
        (("synth",), ("synth",), ""),
        ((), ("no vocals", "no vocal", "no voice"), "negations: only presence counts"),
        ((), ("classical", "slow", "techno", "electronic", "rock", "fast", "ambient", "beat", "indian",
              "loud", "quiet", "pop", "soft", "solo", "classic", "new age", "dance", "beats", "weird",
              "country", "metal"), _NAMES_NONE + " ('beat(s)', 'techno' suggest drums but do not name them)"),
    ),
    "MSD": (
        (("singer",), ("female vocalists", "male vocalists", "female vocalist"), "a vocalist is a singer"),
        (("plucked_string",), ("guitar",), "acoustic or electric unknown: the family only"),
        ((), ("instrumental",), "a negation: only presence counts"),
        ((), ("acoustic",), "acoustic music, often with acoustic guitar, but it names no instrument"),
        ((), ("rock", "pop", "alternative", "indie", "electronic", "dance", "00s", "alternative rock",
              "jazz", "beautiful", "metal", "chillout", "classic rock", "soul", "indie rock", "Mellow",
              "electronica", "80s", "folk", "90s", "chill", "punk", "oldies", "blues", "hard rock",
              "ambient", "experimental", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
              "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
              "sad", "House", "happy"), _NAMES_NONE),
    ),
}


# Classes whose tags name only some of their common instruments: a low tag probability there is
# weak evidence of absence (MTT's 'flute' says nothing about a clarinet or a saxophone), so
# fusion gives them ``model.fusion_partial_weight`` (keras_inst.models.fusion). class -> why.
PARTIAL_EVIDENCE: dict[str, dict[str, str]] = {
    "MTT": {
        "woodwind": "'flute' only: no clarinet, oboe, bassoon or saxophone tag",
        "key": "'piano', 'harpsichord' only: no organ or electric piano tag",
        "percussion": "'drums' (the kit) only: no hand or mallet percussion tag",
        "plucked_string": "'guitar', 'sitar', 'harp' only: no bass, banjo or mandolin tag",
    },
    "MSD": {
        "plucked_string": "'guitar' only: no bass, harp, banjo or mandolin tag",
    },
}


def _spec(name: str) -> TaggerSpec:
    if name not in TAGGERS:
        raise ValueError(f"unknown musicnn tagger {name!r}; known: {', '.join(TAGGERS)}")
    return TAGGERS[name]


def tag_names(name: str) -> tuple[str, ...]:
    """The 50 tags of tagger ``name``, in output order (musicnn's configuration.py)."""
    return MUSICNN_LABELS[_spec(name).vocabulary]


def class_tags(vocabulary: str) -> dict[str, tuple[str, ...]]:
    """class -> the tags that name it or one of its instruments, for 'MTT' or 'MSD' (every class
    a key; empty: no evidence)."""
    if vocabulary not in TAG_CLASSES:
        raise ValueError(f"tag vocabulary must be one of {', '.join(TAG_CLASSES)}, got {vocabulary!r}")
    out: dict[str, list[str]] = {c: [] for c in CLASSES}
    for classes, tags, _why in TAG_CLASSES[vocabulary]:
        for c in classes:
            for target in (c, FAMILY_OF.get(c)):
                if target is not None:
                    out[target].extend(tags)
    return {c: tuple(t) for c, t in out.items()}


def no_evidence_classes(name: str) -> tuple[str, ...]:
    """Classes that no tag of tagger ``name`` names: the zero-shot classifier outputs 0 for them."""
    return tuple(c for c, tags in class_tags(_spec(name).vocabulary).items() if not tags)


def partial_evidence_classes(name: str) -> tuple[str, ...]:
    """Classes (CLASSES order) whose tags in tagger ``name`` name only some of their common
    instruments (:data:`PARTIAL_EVIDENCE`)."""
    partial = PARTIAL_EVIDENCE[_spec(name).vocabulary]
    return tuple(c for c in CLASSES if c in partial)


def tagger_config(name: str) -> ExperimentConfig:
    """A config with musicnn's front end (the values :data:`MUSICNN_REQUIRED` allows first),
    ``TAGGER_SAMPLES`` chunks, the tagger's architecture and weights (``training.pretrained``)."""
    features = {k.split(".")[1]: v[0] for k, v in MUSICNN_REQUIRED.items() if k.startswith("features.")}
    return ExperimentConfig(
        audio=AudioConfig(sample_rate=int(MUSICNN_REQUIRED["audio.sample_rate"][0]),
                          chunk_seconds=TAGGER_SAMPLES / MUSICNN_REQUIRED["audio.sample_rate"][0]),
        features=FeaturesConfig(**features),
        model=ModelConfig(architecture=_spec(name).architecture),
        training=TrainingConfig(transfer="frozen", pretrained=name),
    )


def _backbone_and_tags(name: str, path: str | Path | None) -> tuple[keras.Model, keras.layers.Dense]:
    """The loaded backbone (log-mel ``[B, 96, 187]`` -> ``[B, D]``) and 50-tag layer of ``name``."""
    spec, cfg = _spec(name), tagger_config(name)
    check_pretrained_config(cfg)  # the front end is what the weights need
    if spec.architecture == "musicnn":
        backbone = build_musicnn_cnn_backbone(cfg, frames=TAGGER_FRAMES)
        tags = keras.layers.Dense(50, name="tags")
        tags.build((None, int(backbone.output.shape[-1])))
        return load_musicnn_cnn_weights(backbone, spec.checkpoint, path=path, tags=tags), tags
    variant = spec.vocabulary.lower()
    vgg = load_musicnn_weights(build_musicnn_backbone(cfg, variant=variant, frames=TAGGER_FRAMES), variant, path=path)
    flat = keras.layers.Flatten(name="pool5_flat")(vgg.get_layer("pool5").output)  # [B, 2 * 1 * 128]
    backbone = keras.Model(vgg.input, flat, name="backbone")
    tags = keras.layers.Dense(50, name="tags")
    tags.build((None, int(flat.shape[-1])))
    values = read_checkpoint_variables(spec.checkpoint, path=path)
    assign_checkpoint({"dense/kernel": (tags.kernel, "tags.kernel", np.asarray),
                       "dense/bias": (tags.bias, "tags.bias", np.asarray)},
                      {k: v for k, v in values.items() if k.startswith("dense/")}, checkpoint=spec.checkpoint)
    return backbone, tags


def class_map_layer(vocabulary: str, tags: tuple[str, ...]) -> keras.layers.Dense:
    """Frozen Dense ``tag logits [B, 50]`` -> ``[B, 15 * 50]``: row ``c`` holds the logits plus 0
    where tag ``t`` names class ``c``, else :data:`NO_EVIDENCE_LOGIT` (max over ``t`` follows)."""
    names = class_tags(vocabulary)
    n = len(tags)
    kernel = np.tile(np.eye(n, dtype=np.float32), (1, len(CLASSES)))  # [50, 15 * 50]
    bias = np.full((len(CLASSES), n), NO_EVIDENCE_LOGIT, np.float32)
    for i, c in enumerate(CLASSES):
        for t in names[c]:
            bias[i, tags.index(t)] = 0.0
    layer = keras.layers.Dense(len(CLASSES) * n, name="class_map", trainable=False)
    layer.build((None, n))
    layer.set_weights([kernel, bias.reshape(-1)])
    return layer


def _assemble(name: str, backbone: keras.Model, head_layers: list[keras.layers.Layer], model_name: str) -> keras.Model:
    frontend = build_frontend(tagger_config(name).audio, tagger_config(name).features)
    emb = keras.Input((int(backbone.output.shape[-1]),), name="embedding")
    x = keras.layers.Dropout(0.5, name="dropout")(emb)  # musicnn's, before its output layer
    for layer in head_layers:
        x = layer(x)
    head = keras.Model(emb, x, name="head")
    wav = keras.Input((TAGGER_SAMPLES,), name="waveform", dtype="float32")
    probs = keras.layers.Activation("sigmoid", dtype="float32", name="probabilities")(head(backbone(frontend(wav))))
    return keras.Model(wav, probs, name=model_name)


def build_tagger(name: str, *, path: str | Path | None = None) -> keras.Model:
    """musicnn tagger ``name`` with its own head: waveform ``[B, 47616]`` at 16 kHz -> 50 tag
    probabilities (:func:`tag_names`). ``path``: where the checkpoints are (see
    :func:`keras_inst.models.musicnn.fetch_musicnn`; default the cache, else PyPI)."""
    backbone, tags = _backbone_and_tags(name, path)
    return _assemble(name, backbone, [tags], "musicnn_tagger")


def zero_shot_classifier(name: str, *, path: str | Path | None = None) -> keras.Model:
    """Tagger ``name`` read as the 15-class classifier: waveform ``[B, 47616]`` -> ``[B, 15]``,
    each class the maximum probability of its tags (:data:`TAG_CLASSES`; 0 where no tag names it)."""
    backbone, tags = _backbone_and_tags(name, path)
    layers = [tags, class_map_layer(_spec(name).vocabulary, tag_names(name)),
              keras.layers.Reshape((len(CLASSES), len(tag_names(name))), name="class_by_tag"),
              keras.layers.GlobalMaxPooling1D(data_format="channels_first", name="class_logits")]
    return _assemble(name, backbone, layers, "musicnn_zero_shot")
