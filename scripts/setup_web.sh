#!/usr/bin/env bash
# Install what the in-browser app needs (keras-inst serve, export --formats web) and its tests:
# npm @litertjs/core (LiteRT.js, Apache-2.0: the TFLite runtime as WebAssembly) under its own
# prefix /opt/keras_inst/npm/web (keras_inst.deploy.web.NPM_PREFIX; its own prefix because an
# `npm install --no-save` into a prefix removes the packages installed there before), and Debian's
# chromium + chromium-driver for tests/deploy/test_web.py (selenium itself is in the `test` extra).
# Idempotent; fails soft: without root/npm/apt it says what is missing and exits 0, and the
# browser tests skip saying why. Measured here: npm 11.8 MB download, 2 s; apt ~130 MB, ~60 s.
set -u
LITERTJS="@litertjs/core@2.5.3"
NPM_PREFIX=/opt/keras_inst/npm/web
PKGS="chromium chromium-driver"
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "setup_web: not root and no sudo; skipped (keras-inst serve says what is missing; browser tests skip)" >&2
        exit 0
    fi
fi
if [ -f "$NPM_PREFIX/node_modules/@litertjs/core/wasm/litert_wasm_compat_internal.wasm" ] && \
   grep -q '"version": "2.5.3"' "$NPM_PREFIX/node_modules/@litertjs/core/package.json" 2>/dev/null; then
    :
elif ! command -v npm >/dev/null 2>&1; then
    echo "setup_web: npm not found; LiteRT.js not installed (apt-get install npm, then re-run)" >&2
else
    echo "setup_web: installing $LITERTJS under $NPM_PREFIX"
    $SUDO mkdir -p "$NPM_PREFIX" && $SUDO npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --ignore-scripts \
        --no-save --silent "$LITERTJS" >/dev/null || echo "setup_web: npm install $LITERTJS failed" >&2
fi
missing=""
if command -v apt-get >/dev/null 2>&1; then
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
else
    echo "setup_web: apt-get not found; install chromium and chromedriver yourself for the browser tests" >&2
fi
if [ -n "$missing" ]; then
    echo "setup_web: installing$missing"
    if ! { $SUDO apt-get update -q >/dev/null && \
           DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; }; then
        echo "setup_web: apt-get failed; the browser tests will skip" >&2
    fi
fi
echo "setup_web: done"
exit 0
