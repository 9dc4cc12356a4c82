#!/usr/bin/env bash
# End-to-end suite: a real etcd and kube-apiserver (built from pinned sources by
# scripts/k8s-binaries.sh, cached in .cache/k8s/), the KMS emulator and
# `kms-secret-guard serve`, driven with the real kubectl. Prints tap output ending in the
# "# { total: …, pass: …, fail: … }" summary, plus how long the build and the suite took.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

started=$SECONDS
if ! bin_dir=$(bash scripts/k8s-binaries.sh); then
  echo "e2e: could not build kube-apiserver and etcd (see above)" >&2
  echo "# { total: 1, pass: 0, fail: 1 }"
  exit 1
fi
echo "e2e: control-plane binaries ready in $((SECONDS - started))s ($bin_dir)"

# KSG_PREBUILT=1 (CI, after `npm test` built): use dist/ as it is.
if [ "${KSG_PREBUILT:-}" = 1 ] && [ -f dist/cli/main.js ]; then
  echo "e2e: using the existing build in dist/"
else
  build_started=$SECONDS
  if ! npm run -s build; then
    echo "e2e: npm run build failed" >&2
    echo "# { total: 1, pass: 0, fail: 1 }"
    exit 1
  fi
  echo "e2e: npm run build took $((SECONDS - build_started))s"
fi

suite_started=$SECONDS
KSG_K8S_BIN_DIR="$bin_dir" npx tap --reporter=tap --timeout=300 --jobs=1 --disable-coverage test/e2e/*.test.ts
status=$?
echo "e2e: suite took $((SECONDS - suite_started))s (total $((SECONDS - started))s)"
exit "$status"
