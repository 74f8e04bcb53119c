"""Label tables of every source vocabulary, as plain data (checked and closed in taxonomy.py).

Each table is a tuple of groups ``(classes, labels, reason)``: every label in ``labels`` maps to
``classes`` (minimal; :func:`keras_inst.taxonomy.close` adds the family of each instrument) and
``reason`` says why, for groups whose mapping is not obvious ("" otherwise). An empty
``classes`` tuple is deliberate: the label names no instrument of the taxonomy. A label listed in
two groups is an error raised when the table is built.
"""

from __future__ import annotations

Group = tuple[tuple[str, ...], tuple[str, ...], str]

# General principles, rendered at the top of docs/taxonomy.md.
PRINCIPLES: tuple[str, ...] = (
    "An instrument implies its family (singer -> voice, drums -> percussion, violin -> "
    "bowed_string, electric/acoustic guitar and electric bass -> plucked_string, piano -> key).",
    "Families follow the Hornbostel-Sachs-like groups of MedleyDB's taxonomy.yaml (bowed, "
    "plucked, winds, brass, voices, percussion), with the paper's extra 'key' family for keyboard "
    "instruments (pianos, electric pianos, organs, harpsichord, clavinet, celesta, mellotron) "
    "and 'synth' for electronic sound generators (synthesizer, sampler, theremin, scratches).",
    "singer = human singing, solo, lead or backing (male/female singer, vocalists, lead/backing "
    "vox). Rap, speech, screams, whispers, beatboxing, crowds and choirs carry only voice: they "
    "are voices but not (solo/lead) singing; a choir is an ensemble timbre of its own.",
    "drums = the drum kit, its parts (kick, snare, toms, hi-hat, rim shots) and programmed kits "
    "(drum machine, breaks, GM drum channel); percussion instruments also played outside a kit "
    "(cymbal, bass drum, timpani, gong, hand percussion, tuned idiophones) carry only percussion.",
    "A sampled or processed instrument keeps the instrument's classes (Slakh is rendered from "
    "sample libraries too): 'violin samples' -> violin, 'acoustic guitar reverse' -> "
    "acoustic_guitar. Labels that name no instrument (mix/room microphones, click, noise, sound "
    "effects, fx/processed sound, unlabeled tracks) map to the empty set on purpose.",
    "The same instrument name maps to the same class set in every vocabulary (checked by tests).",
)

_FREE_REED = "hand-held free reeds: MedleyDB groups them with the winds (not with organs)"
_KEYBOARD = "keyboard instruments form the paper's 'key' family (MedleyDB: struck/plucked/reeds)"
_STRUCK_ZITHER = "struck zithers sound like plucked zithers (guzheng); no struck-string family"
_KIT_PART = "parts of the drum kit (close microphones of a kit)"
_NOT_KIT = "also played outside a kit (orchestra, marching, hand percussion)"
_NON_SINGING = "voices that do not sing (speech, rap, screams, crowd, beatboxing, choir ensemble)"
_ELECTRONIC = "electronic sound generators (MedleyDB 'electronic' group)"
_NO_INSTRUMENT = "names no instrument: mix/room microphone, effect, noise or unlabeled"
_WHISTLE = "whistles are edge-blown aerophones (Hornbostel-Sachs flutes), as GM 78"

MEDLEYDB: tuple[Group, ...] = (
    (("violin",), ("violin", "violin section"), ""),
    (("bowed_string",),
     ("erhu", "viola", "cello", "double bass", "viola section", "cello section",
      "string section", "dilruba"),
     "double bass follows MedleyDB's 'bowed' group whatever the playing technique"),
    (("acoustic_guitar",), ("acoustic guitar",), ""),
    (("plucked_string",),
     ("banjo", "guzheng", "harp", "liuqin", "mandolin", "oud", "ukulele", "zhongruan", "sitar"),
     ""),
    (("plucked_string",), ("slide guitar",),
     "a playing technique: acoustic or electric guitar unknown, so the family only"),
    (("plucked_string",), ("dulcimer", "yangqin"), _STRUCK_ZITHER),
    (("piano",), ("piano", "tack piano"), ""),
    (("key",), ("harpsichord", "harmonium", "pipe organ", "electric piano", "electronic organ"),
     _KEYBOARD),
    (("woodwind",),
     ("dizi", "flute", "flute section", "piccolo", "bamboo flute", "panpipes", "recorder",
      "alto saxophone", "baritone saxophone", "bass clarinet", "clarinet", "clarinet section",
      "tenor saxophone", "soprano saxophone", "oboe", "english horn", "bassoon", "bagpipe",
      "woodwind section"),
     ""),
    (("woodwind",), ("harmonica", "concertina", "accordion", "bandoneon", "melodica"), _FREE_REED),
    (("woodwind",), ("whistle",), _WHISTLE + "; MedleyDB lists it among idiophones"),
    (("brass",),
     ("trumpet", "cornet", "trombone", "french horn", "euphonium", "tuba", "brass section",
      "french horn section", "trombone section", "horn section", "trumpet section"),
     ""),
    (("singer",), ("male singer", "female singer", "vocalists"), ""),
    (("voice",),
     ("male speaker", "female speaker", "male rapper", "female rapper", "beatboxing", "choir",
      "crowd", "male screamer", "female screamer"),
     _NON_SINGING),
    (("percussion",),
     ("triangle", "sleigh bells", "cowbell", "cabasa", "gong", "guiro", "gu", "cymbal", "chimes",
      "castanet", "claps", "rattle", "shaker", "maracas", "xylophone", "vibraphone", "marimba",
      "glockenspiel", "snaps", "timpani", "bass drum", "bongo", "conga", "tambourine", "darbuka",
      "doumbek", "tabla", "auxiliary percussion"),
     _NOT_KIT),
    (("drums",), ("drum set",), ""),
    (("drums",), ("kick drum", "snare drum", "toms", "high hat"), _KIT_PART),
    (("drums",), ("drum machine",),
     "a programmed drum kit sounds like a kit (Slakh's drums are sampled kits too)"),
    (("electric_guitar",), ("clean electric guitar", "distorted electric guitar"), ""),
    (("electric_guitar",), ("lap steel guitar",),
     "an electric guitar played lap-style (MedleyDB groups it with the amplified guitars)"),
    (("electric_bass",), ("electric bass",), ""),
    (("synth",), ("synthesizer", "sampler", "theremin", "scratches"), _ELECTRONIC),
    ((), ("fx/processed sound", "Main System", "Unlabeled"), _NO_INSTRUMENT),
)

# Labels Mixing Secrets shares with MedleyDB (lower-cased); they take MedleyDB's class set.
MIXING_SECRETS_SHARED: tuple[str, ...] = (
    "accordion", "acoustic guitar", "alto saxophone", "banjo", "baritone saxophone",
    "bass clarinet", "bassoon", "bongo", "cello", "chimes", "choir", "claps", "clarinet",
    "clean electric guitar", "conga", "distorted electric guitar", "double bass", "drum machine",
    "drum set", "dulcimer", "electric bass", "electric piano", "electronic organ",
    "female singer", "female speaker", "flute", "fx/processed sound", "glockenspiel", "gong",
    "harmonica", "harp", "harpsichord", "main system", "male rapper", "male screamer",
    "male singer", "male speaker", "mandolin", "maracas", "marimba", "oboe", "piano",
    "recorder", "shaker", "sitar", "string section", "synthesizer", "tambourine",
    "tenor saxophone", "timpani", "triangle", "trombone", "trumpet", "tuba", "vibraphone",
    "viola", "violin", "vocalists", "whistle",
)

_SAME_AS = "spelling variant, plural, microphone/DI or processed take of the named instrument"
_SAMPLED = "a sample-library rendering still sounds like the instrument"

# Mixing Secrets labels that MedleyDB does not have (all lower-case, as in the metadata).
MIXING_SECRETS_OWN: tuple[Group, ...] = (
    (("violin",),
     ("violins", "fiddle", "violin samples", "violinsamples"), _SAME_AS),
    (("bowed_string",),
     ("cellos", "cello samples", "cellosamples", "violas", "viola samples", "violasamples",
      "doublebasssamples", "strings", "strings_ensemble", "strings_soli", "strings_staccato",
      "stringsmix", "stringspizz", "stringstunedmix", "spot_highstrings", "spot_lowstrings"),
     _SAME_AS + "; string-section spot microphones"),
    (("bowed_string",), ("bass samples", "bassmic", "bassmic_peerarray"),
     "double bass: MIDI-sampled in an orchestral session; miked upright in jazz/boogie trios"),
    (("acoustic_guitar",), ("acousticgtr", "acoustic guitar reverse"), _SAME_AS),
    (("plucked_string",),
     ("autoharp", "dobro", "guitalele", "harp sample", "harpharmonics", "psaltery", "ukelele",
      "ukeleledi", "ukelelemic"),
     "zithers, lutes and harps that are not one of the three named guitars/basses"),
    (("electric_guitar",),
     ("clean electric guitar reverse", "clean electric guitar samples",
      "distorted electric guitar samples", "distorted electric guitarrevfx", "elecgtr", "gtr",
      "ebow", "feedback"),
     _SAME_AS + "; 'gtr' tracks are amped guitars, 'feedback'/'ebow' come from ElecGtr tracks"),
    (("electric_bass",),
     ("electric bassampmic", "electric bassdi", "bassdi", "basspod"), _SAME_AS),
    (("electric_bass",), ("bass",),
     "unrenamed bass tracks of rock/pop sessions: bass guitar is by far the likeliest"),
    (("piano",), ("pianodry",), _SAME_AS),
    (("key",),
     ("clav", "clavinet", "hammond", "organ", "rhodes", "rhodesamp", "rhodesdi", "wurlitzer",
      "keyboard", "keys", "mellotron", "bellpiano", "toy piano"),
     _KEYBOARD + "; a toy piano strikes rods, so key but not piano"),
    (("woodwind",),
     ("accordian", "ethnoflute", "saxophone", "saxtenor", "saxmic_peerarray"), _SAME_AS),
    (("brass",),
     ("brass", "horns", "french horns", "frenchhorn", "frenchhornsamples", "samplebrass",
      "trombonebass", "trombones", "trumpetsamples", "tub", "tubas"),
     _SAME_AS + "; 'tub' is a tuba track"),
    (("brass",), ("didgeridoo",), "lip-vibrated aerophone: a trumpet in Hornbostel-Sachs terms"),
    (("singer",),
     ("backingvos", "backingvox", "leadvox", "leadvoxdouble", "leadvoxdt", "female singer sample",
      "female singer_alttake", "female singer_isobooth", "female singers", "male singers",
      "male vocalists"),
     _SAME_AS),
    (("voice",),
     ("male rapper fx", "samplechoir", "gangs", "scream", "speech", "whisper"), _NON_SINGING),
    (("drums",),
     ("break", "fill", "brushes", "brushkit", "rim", "rimshot", "sidestick"),
     _KIT_PART + "; drum breaks and fills are kit recordings"),
    (("percussion",),
     ("anvil", "bell", "bell sample", "bells", "handbells", "schoolbell", "tubularbells",
      "bombo", "bongos", "clap", "hand claps", "handclap", "fingerclicks", "clave", "congas",
      "cunono", "daiko", "taiko", "roman wardrum", "djembe", "djembefx", "malaysiandjembe",
      "electropercussion", "gongroll", "guasa", "kalimba", "metalhit", "paliteo", "percussion",
      "percchoir micpair", "percsolo_closemic", "percsolo_farmicpair", "rainstick", "shakers",
      "sleighbells", "tamb", "tambo", "tambourineamb", "timbale", "timp", "vibrophone",
      "wineglasses", "woodblock"),
     _NOT_KIT + "; struck, shaken, plucked (kalimba) or rubbed (wineglasses) idiophones"),
    (("synth",),
     ("bass synth", "subbass", "basssub", "electrochoir", "pad", "stringpad", "sample"),
     _ELECTRONIC + "; synth basses, pads and sampler parts"),
    ((),
     ("ambience", "ambmono", "ambstereo", "amomono", "mainpair", "room", "room_mono",
      "room_stereo", "click", "boom", "subboom", "subdrop", "hit", "electrohit", "elecnoise",
      "noise", "noisesweep", "vinylnoise", "lightning", "storm", "radio", "transition",
      "sprinkles"),
     _NO_INSTRUMENT),
)

# General MIDI program names 0..127 (Slakh's midi_inst_values) and 128 = Slakh's drum channel.
GM_PROGRAM_NAMES: tuple[str, ...] = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone",
    "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion",
    "Harmonica", "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings",
    "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2",
    "Choir Aahs", "Voice Oohs", "Synth Voice", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section",
    "Synth Brass 1", "Synth Brass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon",
    "Clarinet",
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle",
    "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)",
    "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bag pipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom",
    "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring",
    "Helicopter", "Applause", "Gunshot",
    "Drums",
)

# Slakh's inst_class per program (its midi_inst_values table): (first program, class name).
SLAKH_INST_CLASS_STARTS: tuple[tuple[int, str], ...] = (
    (0, "Piano"), (8, "Chromatic Percussion"), (16, "Organ"), (24, "Guitar"), (32, "Bass"),
    (40, "Strings"), (48, "Strings (continued)"), (56, "Brass"), (64, "Reed"), (72, "Pipe"),
    (80, "Synth Lead"), (88, "Synth Pad"), (96, "Sound Effects"), (104, "Ethnic"),
    (112, "Percussive"), (119, "Sound effects"), (128, "Drums"),
)

# Slakh: (classes, programs, reason); 128 is the drum channel (is_drum: true).
SLAKH: tuple[tuple[tuple[str, ...], tuple[int, ...], str], ...] = (
    (("piano",), (0, 1, 2, 3), "acoustic, bright, electric grand and honky-tonk are pianos"),
    (("key",), (4, 5), "electric pianos (Rhodes/DX type) are keyboards, not the piano"),
    (("key",), (6, 7, 8), _KEYBOARD + ": harpsichord, clavinet, celesta"),
    (("percussion",), (9, 10, 11, 12, 13, 14), "tuned idiophones (MedleyDB: idiophones)"),
    (("plucked_string",), (15,), _STRUCK_ZITHER),
    (("key",), (16, 17, 18, 19, 20), "organs, including the reed organ (harmonium)"),
    (("woodwind",), (21, 22, 23), _FREE_REED),
    (("acoustic_guitar",), (24, 25), ""),
    (("electric_guitar",), (26, 27, 28, 29, 30, 31), ""),
    (("plucked_string",), (32,),
     "GM acoustic bass is a plucked (jazz pizzicato) upright: family only"),
    (("electric_bass",), (33, 34, 35, 36, 37), ""),
    (("synth",), (38, 39), "synth basses are synthesizers"),
    (("violin",), (40, 110), "violin and fiddle are the same instrument"),
    (("bowed_string",), (41, 42, 43, 44, 45, 48, 49),
     "bowed-string instruments and sections, pizzicato included (family by instrument)"),
    (("plucked_string",), (46, 104, 105, 106, 107), "harp, sitar, banjo, shamisen, koto"),
    (("percussion",), (47, 108, 112, 113, 114, 115, 116, 117, 118),
     "timpani, kalimba, bells, agogo, steel drums, woodblock, taiko, toms, synth drum"),
    (("synth",), (50, 51, 54, 55, 62, 63),
     "synth strings/voice/brass and the orchestra-hit sample are synthesizer patches"),
    (("voice",), (52,), "a choir is voice but not a singer"),
    (("singer",), (53,), "the embedded corpus renders sung melody parts with program 53"),
    (("brass",), (56, 57, 58, 59, 60, 61), ""),
    (("woodwind",), tuple(range(64, 80)) + (109, 111),
     "reeds and pipes incl. whistle/ocarina/blown bottle; bag pipe and shanai are reeds"),
    (("synth",), tuple(range(80, 104)), "synth leads, pads and synth effects"),
    ((), tuple(range(119, 128)),
     "sound effects (reverse cymbal, fret/breath noise, seashore ... gunshot) name no instrument"),
    (("drums",), (128,), "Slakh's drum channel (is_drum) is a drum kit"),
)

JAMENDO_PREFIX = "instrument---"

# MTG-Jamendo instrument tags (without the "instrument---" prefix).
MTG_JAMENDO: tuple[Group, ...] = (
    (("voice",), ("voice",), "the tag covers singing, speech and choirs alike: the family only"),
    (("violin",), ("violin",), ""),
    (("bowed_string",), ("cello", "viola", "doublebass", "strings"), ""),
    (("acoustic_guitar",), ("acousticguitar", "classicalguitar"), ""),
    (("electric_guitar",), ("electricguitar",), ""),
    (("plucked_string",), ("guitar",), "acoustic or electric unknown: the family only"),
    (("plucked_string",), ("harp", "ukulele"), ""),
    (("plucked_string",), ("acousticbassguitar",),
     "an acoustic bass guitar is plucked but not electric (as GM 32)"),
    (("electric_bass",), ("bass",), "as Mixing Secrets 'bass': bass guitar is the likeliest"),
    (("piano",), ("piano",), ""),
    (("key",), ("electricpiano", "rhodes", "keyboard", "organ", "pipeorgan"), _KEYBOARD),
    (("woodwind",), ("clarinet", "flute", "oboe", "saxophone"), ""),
    (("woodwind",), ("accordion", "harmonica"), _FREE_REED),
    (("brass",), ("brass", "horn", "trombone", "trumpet"), "'horn' is French horn or horns"),
    (("drums",), ("drums", "drummachine"), ""),
    (("drums",), ("beat",), "a programmed beat is a drum-kit pattern, as drum machine"),
    (("percussion",), ("percussion", "bongo", "bell"), ""),
    (("synth",), ("synthesizer", "sampler", "pad"), ""),
    (("synth",), ("computer",), "computer-made sound: software synthesizers and samplers"),
    ((), ("orchestra",), "an ensemble of several families, not one instrument or family"),
)
