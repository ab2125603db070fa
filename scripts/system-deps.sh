#!/usr/bin/env bash
# Debian packages the test suite runs for real: Slurm + munge (tests/test_slurm_e2e.py) and chromium
# (tests/test_mlflow_ui.py). Installs only what is missing; needs root (CI runs as root).
set -euo pipefail
need=()
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
command -v munged >/dev/null || need+=(munge)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  echo "apt-get install ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
