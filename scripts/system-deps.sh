#!/usr/bin/env bash
# Debian packages the test suite runs for real: Slurm + munge + slurmdbd/MariaDB (tests/test_slurm_*.py) and chromium
# (tests/test_mlflow_ui.py). Installs only what is missing; needs root (CI runs as root).
set -euo pipefail
need=()
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
command -v munged >/dev/null || need+=(munge)
command -v slurmdbd >/dev/null || need+=(slurmdbd)          # sacct for `launch status|list` and the tests
command -v mariadbd >/dev/null || need+=(mariadb-server)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  echo "apt-get install ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
