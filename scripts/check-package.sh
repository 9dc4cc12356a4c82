#!/usr/bin/env bash
# What the container image relies on, checked without a Docker engine:
#   1. `npm pack` holds dist/ (the CLI), the manifests and no private keys;
#   2. the image's install (`npm ci --omit=dev` from package-lock.json, as the Dockerfile's
#      deps stage does) runs `kms-secret-guard --version` and `serve --help`;
#   3. so does a plain production install of the tarball (`npm install --omit=dev <tgz>`);
#   4. the Dockerfile's Node.js major is the documented runtime (24) and satisfies
#      package.json engines, and every path it COPYs exists and passes .dockerignore.
# Usage: scripts/check-package.sh [WORKDIR]   (default: a temp dir, removed at the end)
# Needs dist/ (run `npm run build` first). Uses the npm cache first (--prefer-offline).
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "check-package: FAIL: $*" >&2; exit 1; }
say() { echo "check-package: $*"; }

user_install=
temporary=
cleanup() {
  # Never leave the background install running when a check fails.
  if [ -n "$user_install" ]; then kill "$user_install" 2>/dev/null || true; fi
  if [ -n "$temporary" ]; then rm -rf "$temporary"; fi
}
trap cleanup EXIT
if [ $# -ge 1 ]; then
  work=$1
  mkdir -p "$work"
else
  work=$(mktemp -d)
  temporary=$work
fi
[ -f dist/cli/main.js ] || fail "dist/cli/main.js is missing: run \`npm run build\` first."
version=$(node -p "require('./package.json').version")

# 1. Pack. --ignore-scripts: `prepare` would rebuild dist/ while other tests may be using it.
tarball=$(npm pack --ignore-scripts --silent --pack-destination "$work" | tail -n 1)
tarball="$work/$tarball"
[ -f "$tarball" ] || fail "npm pack produced no tarball"
listing=$(tar -tzf "$tarball")
grep -qx 'package/dist/cli/main.js' <<<"$listing" || fail "the tarball has no dist/cli/main.js (check \"files\" in package.json)"
grep -qx 'package/manifests/base/kustomization.yaml' <<<"$listing" || fail "the tarball has no manifests/"
grep -qx 'package/dist/plugin/proto/api.proto' <<<"$listing" || fail "the tarball has no dist/plugin/proto/api.proto (kms-plugin's gRPC API; npm run build copies it)"
if grep -E '\.(key|pem|crt)$|(^|/)\.env$' <<<"$listing"; then
  fail "the tarball contains key or certificate material (listed above)"
fi
say "packed $(basename "$tarball") ($(wc -l <<<"$listing") files)"

check_cli() { # $1: label, $2: path of the kms-secret-guard executable
  local got
  got=$("$2" --version) || fail "$1: \`kms-secret-guard --version\` failed"
  [ "$got" = "$version" ] || fail "$1: --version printed '$got', expected '$version'"
  "$2" serve --help | grep -q 'Usage: kms-secret-guard serve' || fail "$1: \`serve --help\` printed no usage"
  say "$1: kms-secret-guard --version = $got; serve --help OK"
}

# 3. As a user would: a production install of the tarball into an empty project. Runs in
# the background while step 2 installs (two installs take a while on a small machine).
# --engine-strict=false: a user's npm default. The repository's engine-strict (.npmrc) and
# `overrides` do not reach people who install the tarball; report what that lets in.
user="$work/npm-user"
rm -rf "$user" && mkdir -p "$user"
echo '{ "name": "check-package-probe", "private": true }' >"$user/package.json"
(cd "$user" && npm install --omit=dev --no-audit --no-fund --prefer-offline --engine-strict=false \
  --loglevel=warn "$tarball" >"$work/npm-user.log" 2>&1) &
user_install=$!

# 2. As the Dockerfile's deps stage: the tarball's package.json plus the lockfile, npm ci.
image="$work/image"
rm -rf "$image" && mkdir -p "$image"
tar -xzf "$tarball" -C "$image" --strip-components=1
cp package-lock.json .npmrc "$image/"
(cd "$image" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error) \
  || fail "npm ci --omit=dev failed in the image layout"
[ ! -d "$image/node_modules/typescript" ] || fail "a dev dependency (typescript) was installed"
chmod +x "$image/dist/cli/main.js"
check_cli "image install" "$image/dist/cli/main.js"

# 3, continued.
status=0
wait "$user_install" || status=$?
user_install=
[ "$status" -eq 0 ] || { cat "$work/npm-user.log" >&2; fail "npm install --omit=dev <tarball> failed"; }
if grep -q EBADENGINE "$work/npm-user.log"; then
  say "WARNING: with a plain npm install on Node $(node --version), these dependencies declare a newer Node.js:"
  grep -oE "package: '[^']+'" "$work/npm-user.log" | sort -u | sed 's/^/check-package:   /' || true
fi
check_cli "npm install" "$user/node_modules/.bin/kms-secret-guard"

# 4. The Dockerfile agrees with package.json and the repository.
node_major=$(sed -nE 's/^ARG NODE_IMAGE=node:([0-9]+).*/\1/p' Dockerfile)
[ "$node_major" = 24 ] || fail "Dockerfile's Node.js major is '${node_major:-none}', the documented runtime is 24"
# shellcheck disable=SC2016 # single quotes on purpose: JavaScript, not shell, reads these.
node -e '
  const engines = require("./package.json").engines?.node ?? "";
  const minimum = Number(/(\d+)/.exec(engines)?.[1] ?? NaN);
  if (!(Number(process.argv[1]) >= minimum)) {
    console.error(`check-package: FAIL: Dockerfile Node ${process.argv[1]} does not satisfy engines "${engines}"`);
    process.exit(1);
  }' "$node_major"
grep -qE '^ENTRYPOINT \["node", *"/app/dist/cli/main.js"\]' Dockerfile || fail "Dockerfile ENTRYPOINT is not node /app/dist/cli/main.js"
while read -r src; do
  [ -e "$src" ] || fail "Dockerfile copies '$src', which does not exist"
done < <(awk '/^COPY / && !/--from=/ { for (i = 2; i < NF; i++) print $i }' Dockerfile)
say "Dockerfile: node:$node_major, engines \"$(node -p "require('./package.json').engines.node")\", COPY sources exist"
say "OK"
