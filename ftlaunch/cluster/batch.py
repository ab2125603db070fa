"""The batch script for a plan: #SBATCH directives and the ftlaunch.sbatch template filled in.

Every value that reaches the script is validated against a strict pattern or shell-quoted: a hostile job
name, partition or path cannot inject shell (tests/test_slurm_render.py feeds it some).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
from importlib import resources
from pathlib import Path
from string import Template

from ftlaunch.contract.errors import ConfigError
from ftlaunch.contract.plan import Plan, atomic_write_text
from ftlaunch.contract.rundir import safe_name

_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.,:+-]{1,64}$")  # partition / account / qos
_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")
TIME_MARGIN = 1.3  # wall-time limit = predicted hours x 1.3 + 10 min: forecasts err, jobs must not be killed
SIGNAL_LEAD_S = 120  # USR1 this long before the limit: time to finish a step and write a checkpoint


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
    batch script's USR1 trap checkpoints and requeues; ftlaunch/cluster/queueplan.py checks a segment is long enough)."""
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
    tmpl = Template(resources.files("ftlaunch.cluster").joinpath("ftlaunch.sbatch").read_text())
    return tmpl.substitute(
        sbatch_directives="\n".join(directives(plan)),
        run_dir_q=shlex.quote(plan.run_dir),
        plan_q=shlex.quote(str(Path(plan.run_dir) / "plan.json")),
        python_q=shlex.quote(python or sys.executable),
        env_exports="\n".join(exports),
        gpus_per_node=int(plan.resources.gpus_per_node),
        signal_lead_s=SIGNAL_LEAD_S,
    )


def write_script(plan: Plan, env: dict[str, str] | None = None) -> Path:
    script = Path(plan.run_dir) / "job.sbatch"
    atomic_write_text(script, render(plan, env))
    os.chmod(script, 0o755)
    return script
