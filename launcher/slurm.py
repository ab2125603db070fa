"""Slurm executor: render the batch script from a plan, submit it, return the job id at once.

Every value that reaches the script is validated against a strict pattern or shell-quoted: a hostile job
name, partition or path cannot inject shell (tests/test_slurm.py feeds it some).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from string import Template

from launcher.errors import ConfigError
from launcher.plan import Plan, atomic_write_text
from launcher.rundir import safe_name

_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.,:+-]{1,64}$")  # partition / account / qos
_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")
TIME_MARGIN = 1.3  # wall-time limit = predicted hours x 1.3 + 10 min: forecasts err, jobs must not be killed
SIGNAL_LEAD_S = 120  # USR1 this long before the limit: time to finish a step and write a checkpoint
SLURM_TIMEOUT_S = 30  # sbatch/scontrol hang while slurmctld is down (../shared/FINDINGS.md)


def _timeout() -> float:
    """FTLAUNCH_SLURM_TIMEOUT_S overrides the bound (tests freeze slurmctld and use a short one)."""
    try:
        return float(os.environ.get("FTLAUNCH_SLURM_TIMEOUT_S") or SLURM_TIMEOUT_S)
    except ValueError:
        return SLURM_TIMEOUT_S


def time_limit(hours: float) -> str:
    minutes = max(10, math.ceil(hours * 60 * TIME_MARGIN + 10))
    d, rem = divmod(minutes, 24 * 60)
    h, m = divmod(rem, 60)
    return f"{d}-{h:02d}:{m:02d}:00"


def _checked(value: str | None, what: str) -> str | None:
    if value in (None, ""):
        return None
    if not _SLURM_NAME.match(str(value)):
        raise ConfigError(
            f"cluster.{what}={value!r} has characters Slurm names do not use: letters, digits, _.,:+- only"
        )
    return str(value)


def _limit(hours: float, max_time_min: int | None) -> str:
    """The plan's time limit, cut to the partition's MaxTime: then it runs as checkpointed segments (the
    batch script's USR1 trap checkpoints and requeues; launcher/queueplan.py checks a segment is long enough)."""
    t = time_limit(hours)
    if max_time_min:
        d, hms = t.split("-")
        h, m, _ = hms.split(":")
        if int(d) * 1440 + int(h) * 60 + int(m) > int(max_time_min):
            d2, rem = divmod(int(max_time_min), 1440)
            return f"{d2}-{rem // 60:02d}:{rem % 60:02d}:00"
    return t


def _mem(gib: float) -> str:
    mib = math.ceil(gib * 1024)
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def directives(plan: Plan) -> list[str]:
    r, c = plan.resources, plan.cluster
    gpus = r.gpus_per_node
    lines = [
        f"--job-name={safe_name(plan.job_name)}",
        f"--nodes={int(r.nodes)}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={int(c.cpus_per_gpu) * gpus}",
        f"--mem={_mem(float(c.mem_per_gpu_gib) * gpus)}",
        f"--time={_limit(plan.forecast.hours, c.max_time_min)}",
        f"--signal=B:USR1@{SIGNAL_LEAD_S}",
        "--requeue",
        "--open-mode=append",
        f"--output={shlex.quote(str(Path(plan.run_dir) / 'slurm-%j.out'))}",
    ]
    if r.gpu != "cpu":
        typ = _checked(c.gres, "gres")  # typed gres (cluster=auto): lands on nodes of the planned GPU
        gpu = f"{typ}:{gpus}" if typ else str(gpus)
        flag = f"--gpus-per-node={gpu}" if c.gpu_flag == "gpus-per-node" else f"--gres=gpu:{gpu}"
        lines.insert(3, flag)
    for key in ("partition", "account", "qos"):
        v = _checked(getattr(c, key), key)
        if v:
            lines.append(f"--{key}={v}")
    return [f"#SBATCH {line}" for line in lines]


def render(plan: Plan, env: dict[str, str] | None = None, python: str | None = None) -> str:
    exports = []
    for k, v in sorted((env or {}).items()):
        if not _ENV_KEY.match(k):
            raise ConfigError(f"environment variable name {k!r} is not valid: use A-Z, 0-9 and _")
        exports.append(f"export {k}={shlex.quote(str(v))}")
    tmpl = Template(resources.files("slurm").joinpath("ftlaunch.sbatch").read_text())
    return tmpl.substitute(
        sbatch_directives="\n".join(directives(plan)),
        run_dir_q=shlex.quote(plan.run_dir),
        plan_q=shlex.quote(str(Path(plan.run_dir) / "plan.json")),
        python_q=shlex.quote(python or sys.executable),
        env_exports="\n".join(exports),
        gpus_per_node=int(plan.resources.gpus_per_node),
        signal_lead_s=SIGNAL_LEAD_S,
    )


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


def write_script(plan: Plan, env: dict[str, str] | None = None) -> Path:
    script = Path(plan.run_dir) / "job.sbatch"
    atomic_write_text(script, render(plan, env))
    os.chmod(script, 0o755)
    return script


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


def discard(run_dir: Path) -> None:
    """sbatch refused the job: leave no run folder and no MLflow run behind (the error says why)."""
    import json

    state = Path(run_dir) / "mlflow.json"
    try:
        s = json.loads(state.read_text()) if state.exists() else {}
        if s.get("run_id"):
            from launcher.tracking import client

            client(s["uri"]).delete_run(s["run_id"])
    except Exception:  # noqa: BLE001 - best effort; the folder goes regardless
        pass
    shutil.rmtree(run_dir, ignore_errors=True)


def job_state(job_id: str) -> str:
    """State of a job (PENDING, RUNNING, COMPLETED, ...), from scontrol: works without slurmdbd."""
    p = _run(["scontrol", "show", "job", "-o", str(job_id)])
    m = re.search(r"\bJobState=(\S+)", p.stdout)
    return m.group(1) if m else "UNKNOWN"
