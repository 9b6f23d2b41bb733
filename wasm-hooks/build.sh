#!/usr/bin/env bash
# Build the example and test hooks into components: wasm-hooks/build.sh [OUT_DIR]
#   1. every guest crate → a core module for wasm32-unknown-unknown (wit-bindgen embeds the WIT);
#   2. our `componentize` tool (wit-component, the version wit-bindgen itself uses) wraps each
#      module into a component. No WASI: the guests import `log` only (except the test guest
#      `wasi-clock`, which imports a WASI clock so that the host's refusal can be tested).
# Output: OUT_DIR/{fuzzy,ordinals,yesno-eu,hostile,echo,wasi-clock,hostile-memories}.wasm
# (default: wasm-hooks/dist). `hostile-memories` is the hostile module with 3 more linear
# memories of 6 MiB each (`add-memories`), for the host's store-wide memory limit.
# Needs: rustup target add wasm32-unknown-unknown (done here when rustup is present).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/dist}"
cd "$here"
if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown >&2
fi
cargo build --quiet --release --locked --target wasm32-unknown-unknown \
    -p hook-fuzzy -p hook-ordinals -p hook-yesno-eu -p hook-hostile -p hook-echo -p hook-wasi-clock
cargo build --quiet --release --locked -p componentize -p add-memories
target="${CARGO_TARGET_DIR:-$here/target}"
modules="$target/wasm32-unknown-unknown/release"
mkdir -p "$out"
componentize() { # MODULE NAME
    "$target/release/componentize" "$1" "$out/$2.wasm.tmp"
    mv "$out/$2.wasm.tmp" "$out/$2.wasm"
}
for crate in fuzzy ordinals yesno-eu hostile echo wasi-clock; do
    componentize "$modules/hook_${crate//-/_}.wasm" "$crate"
done
"$target/release/add-memories" "$modules/hook_hostile.wasm" "$out/hostile-memories.core.wasm" 3 96
componentize "$out/hostile-memories.core.wasm" hostile-memories
rm -f "$out/hostile-memories.core.wasm"
echo "$out"
