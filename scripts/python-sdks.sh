#!/usr/bin/env bash
# Installs the pinned Alibaba Cloud Python SDKs the interop tests drive (the current
# alibabacloud-kms20160120 and the classic aliyun-python-sdk-kms + core) from PyPI into
# the git-ignored virtual environment .cache/python-sdks, reusing it while
# test/interop/python/requirements.txt is unchanged. Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=test/interop/python/requirements.txt
venv="$PWD/.cache/python-sdks"
stamp="$venv/requirements.sha256"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$requirements" >&2
  echo "$wanted" >"$stamp"
fi
"$venv/bin/python" -c 'import alibabacloud_kms20160120, aliyunsdkkms, aliyunsdkcore'
echo "$venv/bin/python"
