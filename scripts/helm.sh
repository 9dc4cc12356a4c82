#!/usr/bin/env bash
# Builds the Helm 3 CLI from its pinned release on the Go module proxy (the chart tests
# and docs use it) and caches it in the git-ignored .cache/helm/<version>/. Does nothing
# but print the path when the cached binary is present. Prints the binary path on stdout.
#
#   scripts/helm.sh            build when missing, print the path of the helm binary
#   scripts/helm.sh --force    rebuild even when cached
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
HELM_VERSION=${KSG_HELM_VERSION:-v3.22.0}
force=false
[ "${1:-}" = "--force" ] && force=true

log() { echo "helm: $*" >&2; }

cache="$root/.cache/helm/$HELM_VERSION"
bin="$cache/helm"
if ! $force && [ -x "$bin" ] && [ "$(cat "$cache/version" 2>/dev/null)" = "$HELM_VERSION" ]; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed, but it is needed to build Helm $HELM_VERSION from the Go module proxy."
  log "Install Go >= 1.26 (https://go.dev/dl/) and run this script again."
  exit 3
fi

started=$(date +%s)
mkdir -p "$cache"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false"
module=helm.sh/helm/v3
info=$(cd "$cache" && go mod download -json "$module@$HELM_VERSION")
gomod=$(sed -n 's/.*"GoMod": *"\(.*\)".*/\1/p' <<<"$info")
commit=$(sed -n 's/.*"Hash": *"\([0-9a-f]\{40\}\)".*/\1/p' <<<"$info" | head -1)
[ -f "$gomod" ] || { log "could not download the go.mod of $module@$HELM_VERSION"; exit 1; }
# As Helm's Makefile: the Kubernetes version `helm template` and `helm lint` assume by
# default is the client-go minor it was built with (client-go v0.N -> Kubernetes 1.N).
k8s_minor=$(sed -nE 's/^\s*k8s\.io\/client-go v0\.([0-9]+)\..*/\1/p' "$gomod" | head -1)
[ -n "$k8s_minor" ] || { log "could not read the client-go version from $gomod"; exit 1; }
pkg=$module/internal/version
ldflags="-w -s -X $pkg.version=$HELM_VERSION -X $pkg.metadata= -X $pkg.gitTreeState=clean"
[ -z "$commit" ] || ldflags="$ldflags -X $pkg.gitCommit=$commit"
for p in pkg/lint/rules pkg/chartutil; do
  ldflags="$ldflags -X $module/$p.k8sVersionMajor=1 -X $module/$p.k8sVersionMinor=$k8s_minor"
done
log "building Helm $HELM_VERSION (first build takes a few minutes on few cores)"
GOBIN="$cache/gobin" nice -n 10 go install -trimpath -ldflags="$ldflags" "$module/cmd/helm@$HELM_VERSION"
mv "$cache/gobin/helm" "$bin"
rmdir "$cache/gobin" 2>/dev/null || true
echo "$HELM_VERSION" >"$cache/version"
got=$("$bin" version --template '{{.Version}}')
[ "$got" = "$HELM_VERSION" ] || { log "built helm reports version $got, expected $HELM_VERSION"; exit 1; }
log "built Helm $HELM_VERSION in $(($(date +%s) - started))s"
echo "$bin"
