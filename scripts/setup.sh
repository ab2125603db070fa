#!/usr/bin/env bash
# Idempotent set-up of .venv with everything ftlaunch and its tests need. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
VPIP=".venv/bin/pip"
stamp=".venv/.ftlaunch-setup-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha1sum | cut -c1-12)"
if [[ ! -f $stamp ]]; then
  "$VPIP" install -q --upgrade pip
  # CPU torch from local disk first; then the rest pinned to it (constraints.txt) so nothing pulls CUDA torch.
  "$VPIP" install -q torch==2.13.0
  "$VPIP" install -q -c constraints.txt -e ".[train,track,dev]"
  DS_BUILD_OPS=0 "$VPIP" install -q -c constraints.txt --no-build-isolation "deepspeed>=0.16"
  touch "$stamp"
fi
