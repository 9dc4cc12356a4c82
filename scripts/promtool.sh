#!/usr/bin/env bash
# Installs Prometheus's `promtool` (rule checks, rule unit tests, metrics lint) from
# Debian's `prometheus` package: downloads the .deb with apt, unpacks it with dpkg-deb and
# keeps only the promtool binary, in the git-ignored .cache/promtool/<version>/. Does
# nothing but print the path when it is cached. Prints the binary path on stdout.
#
#   scripts/promtool.sh            install when missing, print the path of promtool
#   scripts/promtool.sh --force    install again even when cached
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
force=false
[ "${1:-}" = "--force" ] && force=true

log() { echo "promtool: $*" >&2; }

cached=$(find "$root/.cache/promtool" -mindepth 2 -maxdepth 2 -name promtool 2>/dev/null | sort -V | tail -1 || true)
if ! $force && [ -n "$cached" ] && [ -x "$cached" ]; then
  echo "$cached"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || {
    log "$tool is missing: promtool comes from Debian's prometheus package. Install promtool"
    log "yourself and put it at .cache/promtool/<version>/promtool, or run on Debian/Ubuntu."
    exit 3
  }
done

version=$(apt-cache policy prometheus 2>/dev/null | sed -n 's/^ *Candidate: *//p')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  log "no prometheus package known to apt; running apt-get update once"
  apt-get update -qq >&2 || { log "apt-get update failed (run as root, with Debian's mirrors reachable)"; exit 1; }
  version=$(apt-cache policy prometheus | sed -n 's/^ *Candidate: *//p')
fi
[ -n "$version" ] && [ "$version" != "(none)" ] || { log "apt knows no prometheus package"; exit 1; }

work=$(mktemp -d)
chmod 755 "$work" # apt downloads as the _apt user
trap 'rm -rf "$work"' EXIT
log "downloading Debian's prometheus $version for its promtool"
(cd "$work" && apt-get download -q "prometheus=$version" >&2)
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
[ -x "$work/root/usr/bin/promtool" ] || { log "the package has no usr/bin/promtool"; exit 1; }
dest="$root/.cache/promtool/${version//[:~]/_}"
mkdir -p "$dest"
cp "$work/root/usr/bin/promtool" "$dest/promtool.tmp"
mv "$dest/promtool.tmp" "$dest/promtool"
log "installed $("$dest/promtool" --version 2>&1 | head -1)"
echo "$dest/promtool"
