"""Run a written plan: on this node (local) or through Slurm. Picks the executor and starts the job; what is
tracked around it (MLflow, the end-of-run summary) is the caller's (ftlaunch/cli/launch.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ftlaunch.cluster import batch, slurm
from ftlaunch.contract.errors import ConfigError
from ftlaunch.contract.plan import Plan
from ftlaunch.contract.say import verbose
from ftlaunch.run import progress


def pick_executor(requested: str, cluster_executor: str) -> str:
    """auto: a cluster declared local runs here; otherwise Slurm when sbatch is on PATH, else here."""
    if requested not in ("auto", "local", "slurm"):
        raise ConfigError(f"executor={requested!r} is not auto, local or slurm")
    if requested != "auto":
        return requested
    if cluster_executor == "local":
        return "local"
    return "slurm" if shutil.which("sbatch") else "local"


def train_command(plan: Plan, python: str | None = None) -> list[str]:
    py = python or sys.executable
    n = plan.resources.gpus_per_node
    recipe = ["-m", "ftlaunch.recipes.train", "--plan", str(Path(plan.run_dir) / "plan.json")]
    if plan.resources.nodes == 1 and n == 1:
        return [py, *recipe]
    if plan.resources.nodes > 1:
        raise ConfigError(f"a {plan.resources.nodes}-node plan needs executor=slurm (local runs one node)")
    return [py, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", *recipe]


def run_local(plan: Plan, env: dict[str, str]) -> int:
    """Train in the foreground, all output in run_dir/train.log. Quiet (default): our own lines and a progress
    bar (ftlaunch/run/progress.py); verbose (`launch -v`): every line echoed. Returns the exit code."""
    cmd = train_command(plan)
    log = Path(plan.run_dir) / "train.log"
    if not verbose():
        r = plan.resources
        print(f"training locally; full output in {log}", flush=True)
        return progress.run_quiet(cmd, env, Path(plan.run_dir), plan.training.max_steps,
                                  r.n_gpus * r.price_per_gpu_hour / 3600)  # fmt: skip
    print(f"running locally: {' '.join(cmd)}", flush=True)
    with open(log, "ab") as f:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env})
        assert p.stdout is not None
        for line in p.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            f.write(line)
        return p.wait()


def submit_slurm(plan: Plan, env: dict[str, str]) -> str:
    """Write the batch script and sbatch it; the job id, at once (never waits for the job)."""
    return slurm.submit(plan, batch.write_script(plan, env))
