"""Job lifecycle against the REAL local Slurm (tests/conftest.py slurm_cluster, with slurmdbd): cancel, an
out-of-memory kill, sbatch refusing a job, and a plan over two real slurmd nodes (n1, n2) through the rendered
sbatch with a requeue mid-run. Training runs on CPU (gloo); the 'GPUs' of the nodes are fake gres."""

import json
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from ftlaunch.contract.plan import read_plan
from tests.conftest import run_launch, submitted, wait_job

LONG = ("+budget=5", "executor=slurm", "data.n_samples=1600", "global_batch=16")


def _mlflow_run(run_dir: Path):
    state = json.loads((run_dir / "mlflow.json").read_text())
    return MlflowClient(tracking_uri=state["uri"]).get_run(state["run_id"])


def _metric_lines(run_dir: Path, n: int, timeout: float = 300) -> int:
    f = run_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and (not f.exists() or len(f.read_text().splitlines()) < n):
        time.sleep(0.2)
    return json.loads(f.read_text().splitlines()[-1])["step"]


def test_cancel_is_classified_and_closes_the_mlflow_run(slurm_cluster, tmp_path):
    r = run_launch(*LONG, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    run_dir, job_id = submitted(tmp_path)
    wait_job(job_id, ("RUNNING",), 300)
    follow = subprocess.Popen([str(Path(sys.executable).parent / "launch"), "logs", job_id, "-f"], cwd=tmp_path,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    c = run_launch("cancel", run_dir.name, cwd=tmp_path)
    assert c.returncode == 0 and f"cancelled Slurm job {job_id}" in c.stdout, c.stderr
    assert wait_job(job_id, ("CANCELLED",), 120) == "CANCELLED"
    out, _ = follow.communicate(timeout=60)  # `logs -f` ends by itself when the job does
    assert follow.returncode == 0 and f"[ftlaunch] job {job_id}" in out and "CANCELLED AT" in out, out[-2000:]
    st = run_launch("status", job_id, cwd=tmp_path)
    assert st.returncode == 0 and "failure  CANCELLED" in st.stdout, st.stdout
    run = _mlflow_run(run_dir)
    assert run.info.status == "KILLED" and run.data.tags["ftlaunch.outcome"] == "CANCELLED"
    again = run_launch("cancel", job_id, cwd=tmp_path)
    assert again.returncode == 0 and "already CANCELLED" in again.stdout


def test_out_of_memory_is_classified_and_becomes_a_calibration_point(slurm_cluster, tmp_path):
    """The 'GPU' here is the CPU process: its memory forecast (~0.6 GiB) is below the 0.65 GiB per GPU the job
    asks (--mem), the real process needs more, and slurmstepd kills the step (OverMemoryKill)."""
    r = run_launch(*LONG, "cluster.mem_per_gpu_gib=0.65", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    run_dir, job_id = submitted(tmp_path)
    assert "#SBATCH --mem=666M" in (run_dir / "job.sbatch").read_text()
    assert read_plan(run_dir / "plan.json").forecast.peak_mem_gib < 0.65
    wait_job(job_id, ("COMPLETED", "FAILED", "OUT_OF_MEMORY", "CANCELLED"), 300)
    time.sleep(2)  # sacct gets the final record from slurmctld
    st = run_launch("status", run_dir.name, cwd=tmp_path)
    assert st.returncode == 0 and "failure  OOM: predicted" in st.stdout and "ran out" in st.stdout, (
        st.stdout + (run_dir / f"slurm-{job_id}.out").read_text()[-2000:]
    )
    plan = read_plan(run_dir / "plan.json")
    (point,) = [json.loads(x) for x in (tmp_path / "runs" / "oom_points.jsonl").read_text().splitlines()]
    assert point["predicted_peak_mem_gib"] == plan.forecast.peak_mem_gib and point["ran_out_at_gib"] == 0.65
    # the point feeds `launch-report --calibrate`: memory needed at least 0.65 / predicted
    from ftlaunch.tracking import calibration

    (rec,) = calibration.oom_records(tmp_path / "runs")
    assert rec["peak_mem"] == 0.65 / plan.forecast.peak_mem_gib > 1
    assert calibration.fit([rec])["factors"][f"cpu/{plan.training.method}"]["peak_mem"] > 1
    run = _mlflow_run(run_dir)
    assert run.info.status == "FAILED" and run.data.tags["ftlaunch.outcome"] == "OOM"
    assert run.data.metrics["peak_mem_gib/oom_predicted"] == plan.forecast.peak_mem_gib
    assert run.data.metrics["peak_mem_gib/oom_ran_out_at"] == 0.65
    ls = run_launch("list", cwd=tmp_path)
    assert "(OOM)" in ls.stdout, ls.stdout


def test_sbatch_refusal_leaves_no_run_folder_and_no_mlflow_run(slurm_cluster, tmp_path):
    """Three nodes asked of a partition with two: sbatch refuses; nothing stays behind."""
    r = run_launch(
        "+budget=5", "executor=slurm", "cluster.max_nodes=3", "n_gpus=3", cwd=tmp_path, timeout=120
    )
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if " INFO mlflow" not in ln]  # MLflow's own DB-creation log
    assert errors == ["error: sbatch refused the job: Node count specification invalid"], r.stderr
    assert list((tmp_path / "runs").iterdir()) == []
    c = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = c.get_experiment_by_name("ftlaunch")
    assert exp is None or c.search_runs([exp.experiment_id]) == []


def test_two_node_plan_trains_across_n1_n2_and_resumes_after_requeue(slurm_cluster, tmp_path):
    """The rendered sbatch on 2 real slurmd nodes: one torchrun per node, c10d rendezvous on n1, gloo; a
    requeue mid-run restarts both from the same checkpoint into the same MLflow run."""
    every = 4
    r = run_launch("+budget=5", "executor=slurm", "data.n_samples=160", "global_batch=4", "cluster.max_nodes=2",
                   "n_gpus=2", f"checkpoint_every={every}", cwd=tmp_path, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    run_dir, job_id = submitted(tmp_path)
    plan = read_plan(run_dir / "plan.json")
    assert plan.resources.nodes == 2 and plan.training.max_steps == 40
    assert "#SBATCH --nodes=2" in (run_dir / "job.sbatch").read_text()
    wait_job(job_id, ("RUNNING",), 300)
    step_at_requeue = _metric_lines(run_dir, 9, timeout=900)
    assert step_at_requeue < plan.training.max_steps
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    log = run_dir / f"slurm-{job_id}.out"
    assert wait_job(job_id, ("COMPLETED", "FAILED", "CANCELLED"), 1800) == "COMPLETED", log.read_text()[
        -3000:
    ]
    text = log.read_text()
    assert text.count("[ftlaunch] job") >= 2
    # both segments ran one rank per node: world size 2 over n1 and n2
    for seg in text.split("[ftlaunch] job")[1:]:
        assert "node n1 rank" in seg and "node n2 rank" in seg, seg[-2000:]
    actuals = json.loads((run_dir / "actuals.json").read_text())
    assert actuals["steps"] == plan.training.max_steps and actuals["segments"] >= 2
    resumed = int(str(actuals["resumed_from"]).rstrip("/").split("-")[-1])
    assert (
        step_at_requeue - every <= resumed < plan.training.max_steps
    )  # lost at most one checkpoint interval
    acct = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "NodeList,State"], capture_output=True,
                          text=True, timeout=30).stdout  # fmt: skip
    assert "n[1-2]|COMPLETED" in acct, acct
    state = json.loads((run_dir / "mlflow.json").read_text())
    c = MlflowClient(tracking_uri=state["uri"])
    steps = {m.step for m in c.get_metric_history(state["run_id"], "train/loss")}
    assert steps == set(range(1, plan.training.max_steps + 1))
    assert c.get_run(state["run_id"]).info.status == "FINISHED"


def test_sweep_submits_one_job_per_plan_and_list_shows_them_together(slurm_cluster, tmp_path):
    r = run_launch("-m", *LONG, "global_batch=16,32", cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr
    dirs = sorted(p.parent for p in tmp_path.glob("runs/*/plan.json"))
    assert len(dirs) == 2
    jobs = [(d / "job_id").read_text().strip() for d in dirs]
    (sweep,) = {(d / "sweep").read_text().strip() for d in dirs}
    ls = run_launch("list", cwd=tmp_path)
    rows = [ln for ln in ls.stdout.splitlines() if sweep in ln]
    assert len(rows) == 2 and {ln.split()[1] for ln in rows} == set(jobs), ls.stdout
    for d in dirs:
        assert run_launch("cancel", d.name, cwd=tmp_path).returncode == 0
    for j in jobs:
        assert wait_job(j, ("CANCELLED", "COMPLETED"), 120)


def test_failure_classes_from_sacct_state_exit_code_and_log():
    """sacct State strings as Slurm 22.05 prints them (the live cases above cover CANCELLED and OOM)."""
    from ftlaunch.cluster.outcome import classify

    assert classify("RUNNING") is None and classify("PENDING") is None and classify("REQUEUED") is None
    assert classify("COMPLETED", "0:0") == "COMPLETED"
    assert classify("CANCELLED by 0", "0:15") == "CANCELLED"
    assert classify("TIMEOUT", "0:0") == "TIMEOUT" and classify("DEADLINE") == "TIMEOUT"
    assert classify("NODE_FAIL", "0:0") == "NODE_FAIL" and classify("BOOT_FAIL") == "NODE_FAIL"
    assert classify("PREEMPTED", "0:0") == "PREEMPTED"
    assert classify("OUT_OF_MEMORY", "0:125") == "OOM"
    assert classify("FAILED", "1:0") == "FAILED"
    assert (
        classify("FAILED", "1:0", "", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate")
        == "OOM"
    )
    assert classify("FAILED", "137:0", "", "slurmstepd-n1: error: Exceeded job memory limit") == "OOM"
    assert classify("COMPLETED", "0:0", "", "CUDA out of memory (recovered)") == "COMPLETED"
