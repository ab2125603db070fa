"""Against a REAL Slurm on localhost (ftlaunch/cluster/local-slurm.sh: Debian slurm-wlm + munge + slurmdbd; nodes n1, n2
on this host). In CI a missing Slurm is a failure, not a skip: the fixture (tests/conftest.py) starts it."""

import json
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from ftlaunch.contract.plan import read_plan
from tests.conftest import run_launch, submitted, wait_job


@pytest.fixture(scope="module")
def cluster(slurm_cluster):
    return slurm_cluster


def test_quickstart_through_sbatch_completes(cluster, tmp_path):
    t = time.time()
    r = run_launch("+budget=5", "executor=slurm", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert time.time() - t < 60  # submission returns at once, the login node is not blocked
    run_dir, job_id = submitted(tmp_path)
    assert f"submitted Slurm job {job_id}" in r.stdout
    assert {"job.sbatch", "plan.json", "config.yaml", "job_id"} <= {p.name for p in run_dir.iterdir()}
    assert wait_job(job_id, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 600) == "COMPLETED", (
        run_dir / f"slurm-{job_id}.out"
    ).read_text()[-3000:]
    actuals = json.loads((run_dir / "actuals.json").read_text())
    assert actuals["steps"] == read_plan(run_dir / "plan.json").training.max_steps
    state = json.loads((run_dir / "mlflow.json").read_text())
    run = MlflowClient(tracking_uri=state["uri"]).get_run(state["run_id"])
    assert run.data.tags["slurm_job_id"] == job_id and run.info.status == "FINISHED"
    assert run.data.metrics["hours/actual"] > 0
    # the lifecycle commands on the finished job: by folder name, by job id, and all runs
    st = run_launch("status", run_dir.name, cwd=tmp_path)
    assert st.returncode == 0, st.stderr
    assert f"{job_id}  COMPLETED" in st.stdout and "failure" not in st.stdout
    assert "predicted" in st.stdout and "tokens/s per GPU" in st.stdout  # ftlaunch/tracking/summary.py table
    ls = run_launch("list", cwd=tmp_path)
    assert ls.returncode == 0 and run_dir.name in ls.stdout and "COMPLETED" in ls.stdout, ls.stdout
    logs = run_launch("logs", job_id, cwd=tmp_path)
    assert logs.returncode == 0 and f"[ftlaunch] job {job_id}" in logs.stdout


def test_requeue_mid_training_resumes_without_losing_steps(cluster, tmp_path):
    every = 4
    r = run_launch("+budget=5", "executor=slurm", "data.n_samples=1600", "global_batch=16",
                   f"checkpoint_every={every}", cwd=tmp_path, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    run_dir, job_id = submitted(tmp_path)
    plan = read_plan(run_dir / "plan.json")
    assert plan.training.max_steps == 100
    wait_job(job_id, ("RUNNING",), 300)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 12):
        time.sleep(0.2)
    step_at_requeue = json.loads(metrics.read_text().splitlines()[-1])["step"]
    assert step_at_requeue < plan.training.max_steps
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    assert wait_job(job_id, ("COMPLETED", "FAILED", "CANCELLED"), 1800) == "COMPLETED", (
        run_dir / f"slurm-{job_id}.out"
    ).read_text()[-3000:]
    actuals = json.loads((run_dir / "actuals.json").read_text())
    assert actuals["steps"] == plan.training.max_steps and actuals["segments"] >= 2
    resumed = int(str(actuals["resumed_from"]).rstrip("/").split("-")[-1])
    assert resumed >= step_at_requeue - every  # lost at most one checkpoint interval
    # one MLflow run across the requeue, each step's loss once per segment at most
    state = json.loads((run_dir / "mlflow.json").read_text())
    c = MlflowClient(tracking_uri=state["uri"])
    steps = {m.step for m in c.get_metric_history(state["run_id"], "train/loss")}
    assert steps == set(range(1, plan.training.max_steps + 1))
    log = (run_dir / f"slurm-{job_id}.out").read_text()
    assert log.count("[ftlaunch] job") >= 2  # --open-mode=append kept both segments


def test_usr1_before_time_limit_checkpoints_requeues_and_finishes(cluster, tmp_path):
    """What --signal=B:USR1@120 does before a time limit, sent by hand: the batch shell traps it, the recipe
    checkpoints at the next step, the job requeues itself and the restart finishes the planned steps."""
    r = run_launch("+budget=5", "executor=slurm", "data.n_samples=1600", "global_batch=16",
                   "checkpoint_every=50", cwd=tmp_path, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    run_dir, job_id = submitted(tmp_path)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 8):
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True, timeout=30)
    assert wait_job(job_id, ("COMPLETED", "FAILED", "CANCELLED"), 1800) == "COMPLETED"
    log = (run_dir / f"slurm-{job_id}.out").read_text()
    assert "USR1: checkpoint at next step, then requeue" in log and "requeueing job" in log
    actuals = json.loads((run_dir / "actuals.json").read_text())
    assert actuals["steps"] == 100 and actuals["segments"] >= 2
    resumed = int(str(actuals["resumed_from"]).rstrip("/").split("-")[-1])
    # the checkpoint a USR1 asked for, not the periodic one (every 50); on a loaded machine the real time limit's
    # USR1 (--signal=B:USR1@120) may come too, and the last resume is then from that one
    assert resumed >= 8 and resumed % 50 != 0


def test_missing_partition_is_refused_before_anything_is_written(cluster, tmp_path):
    r = run_launch("+budget=5", "executor=slurm", "cluster.partition=nosuchpart", cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "cluster.partition='nosuchpart' does not exist" in r.stderr
    assert not (tmp_path / "runs").exists()
    queued = subprocess.run(["squeue", "-h"], capture_output=True, text=True, timeout=30).stdout
    assert "nosuchpart" not in queued
