"""Run a written plan: on this node (local) or through Slurm. Picks the executor, nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from launcher.errors import ConfigError
from launcher.plan import Plan


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
    if plan.resources.nodes == 1 and n == 1:
        return [py, "-m", "recipes.train", "--plan", str(Path(plan.run_dir) / "plan.json")]
    if plan.resources.nodes > 1:
        raise ConfigError(f"a {plan.resources.nodes}-node plan needs executor=slurm (local runs one node)")
    return [py, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
            "-m", "recipes.train", "--plan", str(Path(plan.run_dir) / "plan.json")]  # fmt: skip


def run_local(plan: Plan, env: dict[str, str]) -> int:
    """Train in the foreground, all output in run_dir/train.log. Quiet (default): our own lines and a progress
    bar (launcher/live.py); verbose (`launch -v`): every line echoed. Returns the exit code."""
    from launcher import live

    cmd = train_command(plan)
    log = Path(plan.run_dir) / "train.log"
    if not live.verbose():
        r = plan.resources
        print(f"training locally; full output in {log}", flush=True)
        return live.run_quiet(cmd, env, Path(plan.run_dir), plan.training.max_steps,
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


def finish_local(plan: Plan, run_dir: Path) -> None:
    """The end of a local run: predicted vs actual, and where to look next."""
    from launcher.summary import show

    show(run_dir)


def execute(plan: Plan, run_dir: Path, executor: str) -> int:
    """Everything the run needs comes from the plan (cost cap, tracking); the config dict is not consulted."""
    kind = pick_executor(executor, plan.cluster.executor)
    from launcher import live

    if kind == "local" and not live.verbose():
        live.route_logs(run_dir / "train.log")
    env = {"FTLAUNCH_RUN_DIR": str(run_dir)}
    trk = plan.tracking
    uri = None
    if trk.enabled:
        from launcher import tracking

        uri = tracking.check_uri(trk.uri or tracking.default_uri())
        env |= {"MLFLOW_TRACKING_URI": uri, **tracking.CLIENT_ENV}
    if kind == "slurm":
        from launcher import slurm

        script = slurm.write_script(plan, env)
        if uri:
            tracking.open_run(plan, uri, trk.experiment, {"executor": "slurm"})
        try:
            job_id = slurm.submit(plan, script)
        except ConfigError:
            slurm.discard(run_dir)
            raise
        if uri:
            tracking.tag(run_dir, "slurm_job_id", job_id)
        print(f"submitted Slurm job {job_id}; output in {run_dir}/slurm-{job_id}.out")
        return 0
    if uri:
        tracking.open_run(plan, uri, trk.experiment, {"executor": "local"})
    rc = run_local(plan, env)
    if uri and not tracking.sync(run_dir):
        print(
            f"warning: MLflow not reachable; metrics kept in {run_dir}, run `launch-report --sync {run_dir}`"
        )
    if (run_dir / "actuals.json").exists():
        finish_local(plan, run_dir)
    if rc == 2:
        return 2  # the recipe already printed the one-line reason (bad data, ...)
    if rc != 0:
        print(f"error: training exited with code {rc}; see {run_dir / 'train.log'}", file=sys.stderr)
        return 1
    return 0
