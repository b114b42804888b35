#!/usr/bin/env bash
# Creates (once) the test virtualenv with the official Alibaba Cloud SDKs, outside the repo,
# and prints its python path. Re-creates it when hack/requirements.txt changes.
set -euo pipefail
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
VENV=$CACHE/venv
REQ=$(cd "$(dirname "$0")" && pwd)/requirements.txt
STAMP=$VENV/.requirements.sha256
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" >&2
  echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
