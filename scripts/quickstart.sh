#!/usr/bin/env bash
# The main job on the embedded defaults: tiny model, sample data, this node.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/launch +budget=5 "$@"
