#!/usr/bin/env bash
# Builds test/interop/go (the current alibabacloud-go/kms-20160120/v3 and the classic
# aliyun/alibaba-cloud-sdk-go/services/kms against the emulator) with modules from the Go
# module proxy into the git-ignored .cache/go/bin, reusing the binary while the sources,
# go.mod and go.sum are unchanged. Go's own module and build caches ($HOME, as for the
# control-plane binaries) make a rebuild in a fresh clone fast. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
src=test/interop/go
out="$PWD/.cache/go/bin"
binary="$out/kms-interop"
stamp="$out/kms-interop.sha256"
wanted=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -d' ' -f1)
if [ ! -x "$binary" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  mkdir -p "$out"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
  (cd "$src" && go build -o "$binary" .) >&2
  echo "$wanted" >"$stamp"
fi
echo "$binary"
