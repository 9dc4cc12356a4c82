#!/usr/bin/env bash
# Builds kube-apiserver and etcd from pinned source releases (Go module proxy) for the
# end-to-end suite and caches them in the git-ignored .cache/k8s/<k8s version>/bin/.
# Reuses cached binaries when present; Go's own module and build caches ($HOME) make a
# rebuild in a fresh clone fast. Prints the folder holding the binaries on stdout.
#
#   scripts/k8s-binaries.sh            build when missing, print the bin folder
#   scripts/k8s-binaries.sh --force    rebuild even when cached
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/k8s-binaries/versions.env
. scripts/k8s-binaries/versions.env
K8S_VERSION=${KSG_K8S_VERSION:-$K8S_VERSION}
K8S_STAGING_VERSION=${KSG_K8S_STAGING_VERSION:-$K8S_STAGING_VERSION}
ETCD_VERSION=${KSG_ETCD_VERSION:-$ETCD_VERSION}
force=false
[ "${1:-}" = "--force" ] && force=true

log() { echo "k8s-binaries: $*" >&2; }

cache="$root/.cache/k8s/$K8S_VERSION"
bin="$cache/bin"
mkdir -p "$bin"

check_kubectl_skew() {
  if ! command -v kubectl >/dev/null 2>&1; then
    log "warning: kubectl not found on PATH; the end-to-end suite needs it."
    return
  fi
  local client_minor server_minor
  client_minor=$(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -1)
  server_minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  if [ -z "$client_minor" ]; then
    log "warning: could not read the kubectl version."
  elif [ $((client_minor - server_minor)) -gt 1 ] || [ $((server_minor - client_minor)) -gt 1 ]; then
    log "warning: kubectl 1.$client_minor is more than one minor version away from kube-apiserver $K8S_VERSION (unsupported skew); results may differ."
  else
    log "kubectl 1.$client_minor is within one minor version of kube-apiserver $K8S_VERSION"
  fi
}
check_kubectl_skew

require_go() {
  command -v go >/dev/null 2>&1 && return
  log "Go is not installed, but it is needed to build kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION."
  log "Install Go >= 1.24 (https://go.dev/dl/) and run this script again."
  exit 3
}

export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
started=$(date +%s)
built=false

build_apiserver() {
  require_go
  local src="$cache/src/kube-apiserver"
  mkdir -p "$src"
  # k8s.io/kubernetes points its staging modules (k8s.io/api, ...) at ./staging via
  # replace lines that do not apply to a dependent module; pin each to the release tag.
  local gomod
  gomod=$(cd "$src" && GOFLAGS='' go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": *"\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { log "could not download the go.mod of k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  {
    echo "module kms-secret-guard.local/kube-apiserver"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" |
      awk -v v="$K8S_STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
  } >"$src/go.mod"
  local pkg=k8s.io/component-base/version
  local minor
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  log "building kube-apiserver $K8S_VERSION (first build takes a while on few cores)"
  (cd "$src" && go build -p 2 -trimpath \
    -ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
    -o "$bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
  echo "$K8S_VERSION" >"$bin/kube-apiserver.version"
  built=true
}

build_etcd() {
  require_go
  local src="$cache/src/etcd"
  mkdir -p "$src"
  printf 'module kms-secret-guard.local/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$src/go.mod"
  log "building etcd $ETCD_VERSION"
  (cd "$src" && go build -p 2 -trimpath -ldflags="-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.tmp" "$bin/etcd"
  echo "$ETCD_VERSION" >"$bin/etcd.version"
  built=true
}

if $force || [ ! -x "$bin/kube-apiserver" ] || [ "$(cat "$bin/kube-apiserver.version" 2>/dev/null)" != "$K8S_VERSION" ]; then
  build_apiserver
fi
if $force || [ ! -x "$bin/etcd" ] || [ "$(cat "$bin/etcd.version" 2>/dev/null)" != "$ETCD_VERSION" ]; then
  build_etcd
fi

if $built; then
  log "built kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION in $(($(date +%s) - started))s"
else
  log "using cached kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION from $bin"
fi
echo "$bin"
