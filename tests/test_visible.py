"""What a person sees: the quickstart's terminal ends with predicted vs actual and where to look next, with
no library noise (that is in train.log); `launch -v` shows everything; the MLflow run reads the same way."""

import json
import re
import subprocess
from pathlib import Path

from mlflow.tracking import MlflowClient

from ftlaunch.contract.plan import read_plan
from ftlaunch.tracking import mlflow_run as tracking
from ftlaunch.tracking import summary
from tests.conftest import run_launch

NOISE = ("Loading weights", "FutureWarning", "warnings.warn", "examples/s", "INFO mlflow", "it/s]", "s/it]")


def test_quickstart_ends_with_predicted_vs_actual_and_no_noise(quickstart):
    d, run_dir = quickstart
    out, err = (d / "launch.stdout").read_text(), (d / "launch.stderr").read_text()
    plan = read_plan(run_dir / "plan.json")
    actuals = json.loads((run_dir / "actuals.json").read_text())
    tail = out[out.index("training locally") :]
    assert "16/16" in tail and "spent $" in tail  # the progress bar's final state
    table = tail[tail.index(summary.headline(plan, actuals)) :]
    for what, p, a, e in summary.rows(plan, actuals):
        line = next(ln for ln in table.splitlines() if f" {what} " in ln)
        assert p in line and a in line and e in line, (what, line)
        assert a != "-" and e.endswith("%")
    state = json.loads((run_dir / "mlflow.json").read_text())
    assert f"runs/{state['run_id']}?workflowType=machine_learning" in table.replace("\n", "")
    assert "launch-report" in table
    assert out.rstrip().endswith("--plot report.png)"), out[-300:]  # nothing after the summary
    log = (run_dir / "train.log").read_text()
    for noise in NOISE:
        assert noise not in out + err, noise
    assert "Loading weights" in log and "INFO mlflow" in log  # the noise went to the log
    assert err == ""


def test_verbose_shows_everything(tmp_path):
    r = run_launch("-v", "+budget=5", "tracking.enabled=false", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "running locally:" in r.stdout and "Loading weights" in r.stdout
    assert "step 16/16 loss" in r.stdout and "[ftlaunch] completed at step 16" in r.stdout
    assert re.search(r"\d+/16 \[\d", r.stdout)  # the trainer's own per-step tqdm bar is on in verbose mode
    assert "predicted" in r.stdout and " cost " in r.stdout  # still ends with the summary


def test_verbose_flag_is_ours_not_hydras(tmp_path):
    r = run_launch("-v", "+budget=5", "dry_run=true", cwd=tmp_path)
    assert r.returncode == 0 and "plan written" in r.stdout, r.stderr
    r = run_launch("--verbose", "-m", "+budget=5,10", "dry_run=true", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob("runs/*/plan.json"))) == 3


def test_mlflow_run_reads_predicted_vs_actual_first(quickstart):
    d, run_dir = quickstart
    state = json.loads((run_dir / "mlflow.json").read_text())
    c = MlflowClient(tracking_uri=state["uri"])
    run = c.get_run(state["run_id"])
    plan = read_plan(run_dir / "plan.json")
    actuals = json.loads((run_dir / "actuals.json").read_text())
    note = run.data.tags["mlflow.note.content"]
    assert note == summary.summary_markdown(plan, actuals)
    assert (
        note.replace(summary.GAP, "").splitlines()[0]
        == f"| completed at step 16/16 | {' | '.join(w for _, w in summary.ROWS)} |"
    )
    assert "| - |" not in note  # every quantity measured
    assert run.data.tags["ftlaunch.plan"] == summary.plan_line(plan)
    exp = c.get_experiment(run.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert state["experiment_id"] == run.info.experiment_id
    # the quickstart runs outside any git repository: no commit tag rather than 'unknown'
    assert "git_commit" not in run.data.tags and "unknown" not in run.data.tags.values()
    # system metrics sampled while it trained
    cpu = c.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(cpu) >= 2 and all(0 <= m.value <= 100 * 64 for m in cpu)


def test_git_commit_is_the_launched_projects(tmp_path):
    assert tracking.git_commit(tmp_path) is None
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "train.jsonl").write_text("{}\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "data"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert tracking.git_commit(tmp_path) == head
    assert tracking.git_commit(Path(tmp_path / "sub")) is None  # a missing folder is no repository
