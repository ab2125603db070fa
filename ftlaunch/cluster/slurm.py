"""Talking to Slurm: every command under a timeout (slurmctld down makes them hang), failures as one line;
submit a written batch script and return the job id at once; a job's state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from ftlaunch.contract.errors import ConfigError
from ftlaunch.contract.plan import Plan, atomic_write_text

SLURM_TIMEOUT_S = 30  # sbatch/scontrol hang while slurmctld is down (docs/stack-facts.md)


def _timeout() -> float:
    """FTLAUNCH_SLURM_TIMEOUT_S overrides the bound (tests freeze slurmctld and use a short one)."""
    try:
        return float(os.environ.get("FTLAUNCH_SLURM_TIMEOUT_S") or SLURM_TIMEOUT_S)
    except ValueError:
        return SLURM_TIMEOUT_S


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    t = _timeout()
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=t)
    except FileNotFoundError:
        raise ConfigError(f"{cmd[0]} not found: install the Slurm client or use executor=local") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"Slurm not reachable: {cmd[0]} gave no answer in {t:g} s (is slurmctld up?); "
            "retry later or use executor=local"
        ) from None


def run_slurm(cmd: list[str]) -> str:
    """stdout of a Slurm command under the timeout; a failure is one ConfigError line."""
    p = _run(cmd)
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).strip().splitlines()
        raise ConfigError(f"{' '.join(cmd[:2])} failed: {msg[-1] if msg else f'exit {p.returncode}'}")
    return p.stdout


def preflight(partition: str | None = None) -> None:
    """Before anything is written: is there a Slurm to submit to, does it answer, has it the partition?"""
    if shutil.which("sbatch") is None:
        raise ConfigError("sbatch not found on PATH: install the Slurm client or use executor=local")
    p = _run(["sinfo", "-h", "-o", "%P"])
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).strip().splitlines()
        raise ConfigError(
            f"Slurm not reachable: sinfo says {msg[-1] if msg else 'nothing'}; retry or use executor=local"
        )
    parts = {ln.strip().rstrip("*") for ln in p.stdout.splitlines() if ln.strip()}
    if partition and partition not in parts:
        raise ConfigError(
            f"cluster.partition={partition!r} does not exist on this Slurm (has {', '.join(sorted(parts))}): "
            f"set cluster.partition"
        )


def submit(plan: Plan, script: Path) -> str:
    """sbatch the written script, record and return the job id. Never waits for the job."""
    p = _run(["sbatch", "--parsable", str(script)])
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).strip().splitlines()
        why = (msg[-1] if msg else "no message").replace("sbatch: error: ", "")
        raise ConfigError(f"sbatch refused the job: {why.replace('Batch job submission failed: ', '')}")
    job_id = p.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise ConfigError(f"sbatch answered {p.stdout.strip()!r}, not a job id")
    atomic_write_text(Path(plan.run_dir) / "job_id", job_id + "\n")
    return job_id


def job_state(job_id: str) -> str:
    """State of a job (PENDING, RUNNING, COMPLETED, ...), from scontrol: works without slurmdbd."""
    p = _run(["scontrol", "show", "job", "-o", str(job_id)])
    m = re.search(r"\bJobState=(\S+)", p.stdout)
    return m.group(1) if m else "UNKNOWN"
