#!/usr/bin/env bash
# Builds bench/loadgen (a Go load generator that calls the webhook like kube-apiserver's
# webhook client; standard library only, so no module download) with the Go toolchain the
# control-plane binaries use, into the git-ignored .cache/loadgen/, and reuses the binary
# while its sources are unchanged. Prints the binary's path on stdout.
# Exit 3 (and a line on stderr) when Go is not installed: `npm run bench` then skips the
# Go load generator's scenarios and says so in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
src=bench/loadgen
out="$PWD/.cache/loadgen"
binary="$out/loadgen"
stamp="$out/loadgen.sha256"
if ! command -v go >/dev/null 2>&1; then
  echo "loadgen: Go is not installed; install Go >= 1.24 (https://go.dev/dl/) to run the Go load generator." >&2
  exit 3
fi
wanted=$( (cat "$src"/go.mod "$src"/*.go; go version) | sha256sum | cut -d' ' -f1)
if [ ! -x "$binary" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  mkdir -p "$out"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
  (cd "$src" && nice go build -trimpath -o "$binary.$$.tmp" .) >&2
  mv "$binary.$$.tmp" "$binary"
  echo "$wanted" >"$stamp"
fi
echo "$binary"
