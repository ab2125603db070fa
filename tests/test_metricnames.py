"""MLflow names grouped by prefix (ftlaunch/contract/metricnames.py), and stores written by older versions (flat names)
still read: a real SQLite store holding one run logged the old way and one logged now, through
launch-report's table, filters and --calibrate."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from ftlaunch.contract import metricnames as names
from ftlaunch.contract.plan import write_plan
from ftlaunch.forecast import compare
from ftlaunch.planning.assemble import to_plan
from ftlaunch.planning.planner import choose
from ftlaunch.tracking import mlflow_run as tracking
from ftlaunch.tracking import report
from tests.conftest import make_job

REPORT = str(Path(sys.executable).parent / "launch-report")


def test_each_quantity_sorts_together_and_maps_to_its_old_name():
    logged = [names.predicted(q) for q in names.FORECAST] + [names.paired(q) for q in names.COMPARED]
    logged += [f(q) for q in names.COMPARED for f in (names.actual, names.error_pct, names.error_ratio)]
    logged += [names.param("method"), names.train("loss"), names.actual("train_s"), names.OOM_PREDICTED]
    logged += [names.actual("steps"), names.train("grad_norm"), names.param("gpu"), "system/cpu_utilization"]
    ordered = sorted(logged)  # what the MLflow UI does
    for q in names.COMPARED:
        mine = [i for i, n in enumerate(ordered) if n.startswith(f"{q}/")]
        assert mine == list(range(mine[0], mine[0] + len(mine))), (q, ordered)  # contiguous
        assert {ordered[i].split("/")[1] for i in mine} >= {"predicted", "actual", "error_pct"}
    old = {
        "hours/predicted": "predicted_hours", "hours/predicted_paired": "paired_predicted_hours",
        "hours/actual": "actual_hours", "hours/error_pct": "error_pct_hours",
        "peak_mem_gib/error_ratio": "error_ratio_peak_mem_gib", "tokens_total/predicted": "predicted_tokens_total",
        "run/train_s": "actual_train_s", "gpu_hours/actual": "actual_gpu_hours", "plan/method": "method",
        "train/loss": "loss", "peak_mem_gib/oom_predicted": "oom_predicted_peak_mem_gib",
        "peak_mem_gib/oom_ran_out_at": "oom_ran_out_at_gib", "system/cpu_utilization": "system/cpu_utilization",
    }  # fmt: skip
    assert {n: names.legacy(n) for n in old} == old
    assert names.actual("steps") == "run/steps" and names.actual("cost_usd") == "cost_usd/actual"
    assert names.get({"actual_hours": 2.0}, "hours/actual") == 2.0
    assert names.get({"actual_hours": 2.0, "hours/actual": 3.0}, "hours/actual") == 3.0
    assert names.get({}, "hours/actual") is None


def _plan_and_actuals(tmp_path: Path, name: str, factor: float):
    job = make_job(model="llama-3-8b", cluster="slurm-a100", method="lora", budget=5000)
    run_dir = tmp_path / name
    run_dir.mkdir()
    plan = to_plan(job, choose(job), str(run_dir))
    write_plan(plan, run_dir / "plan.json")
    fc = plan.forecast
    actuals = {"peak_mem_gb": (fc.peak_mem_gib - fc.mem_breakdown_gib["overhead"]) * factor,
               "tokens_per_s_per_gpu": fc.tokens_per_s_per_gpu / factor, "wall_s": fc.hours * 3600 * factor,
               "train_s": fc.hours * 3600 * factor * 0.9, "cost_usd": fc.cost_usd * factor, "steps": 10,
               "stop_reason": "completed"}  # fmt: skip
    return plan, actuals


def _log_the_old_way(uri: str, experiment: str, plan, actuals) -> str:
    """A run as ftlaunch logged it before the prefixes (flat names, written out literally here: this is what
    users' existing mlflow.db files hold)."""
    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else c.create_experiment(experiment)
    run = c.create_run(exp_id, run_name="old-style-run", tags={"ftlaunch.status": "completed"})
    fc, t, r = plan.forecast, plan.training, plan.resources
    now = int(time.time() * 1000)
    params = {"model": plan.model.name, "method": t.method, "gpu": r.gpu, "n_gpus": str(r.n_gpus),
              "zero_stage": str(r.zero_stage), "micro_batch": str(t.micro_batch)}  # fmt: skip
    metrics = {f"predicted_{k}": getattr(fc, k) for k in ("peak_mem_gib", "tokens_per_s_per_gpu", "hours",
                                                         "gpu_hours", "cost_usd")}  # fmt: skip
    metrics["predicted_tokens_total"] = fc.tokens_total
    metrics |= {f"actual_{k}": v for k, v in actuals.items() if isinstance(v, (int, float))}
    for k, (a, p) in compare.pairs(plan, actuals).items():
        metrics |= {f"actual_{k}": a, f"paired_predicted_{k}": p, f"error_pct_{k}": (a - p) / p * 100}
    c.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()], tags=[RunTag("x", "y")])  # fmt: skip
    c.log_metric(run.info.run_id, "loss", 1.5, step=1)
    c.set_terminated(run.info.run_id)
    return run.info.run_id


def test_report_and_calibration_read_old_flat_runs_beside_new_ones(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    old_plan, old_actuals = _plan_and_actuals(tmp_path, "old", 1.25)
    old_id = _log_the_old_way(uri, "mixed", old_plan, old_actuals)
    time.sleep(0.01)  # start times differ: the new run is the newest
    new_plan, new_actuals = _plan_and_actuals(tmp_path, "new", 1.25)
    (new_plan_dir := Path(new_plan.run_dir)).joinpath("actuals.json").write_text(json.dumps(new_actuals))
    new_id = tracking.open_run(new_plan, uri, "mixed")
    assert new_id and tracking.sync(new_plan_dir)
    assert "plan/method" in MlflowClient(tracking_uri=uri).get_run(new_id).data.params

    rows = {r["run_id"]: r for r in report.fetch(uri, "mixed", None, None, 10)}
    assert set(rows) == {old_id, new_id}
    for plan, actuals, run_id in ((old_plan, old_actuals, old_id), (new_plan, new_actuals, new_id)):
        row = rows[run_id]
        assert (row["method"], row["gpu"], row["n_gpus"]) == (
            "lora",
            plan.resources.gpu,
            plan.resources.n_gpus,
        )
        for k, (a, p) in compare.pairs(plan, actuals).items():
            assert row["actual"][k] == pytest.approx(a) and row["predicted"][k] == pytest.approx(p), k
        assert row["predicted"]["tokens_total"] == pytest.approx(plan.forecast.tokens_total)
        assert row["actual"]["train_s"] == pytest.approx(actuals["train_s"])
    # filters match both namings (params.method and params.`plan/method`), and exclude both
    gpu = new_plan.resources.gpu
    assert {r["run_id"] for r in report.fetch(uri, "mixed", "lora", gpu, 10)} == {old_id, new_id}
    assert report.fetch(uri, "mixed", "full", None, 10) == []
    assert [r["run_id"] for r in report.fetch(uri, "mixed", "lora", None, 1)] == [new_id]  # newest first

    # the command, end to end: table lists both, calibration fits from both (n=2, same ratios)
    cal = tmp_path / "calibration.json"
    r = subprocess.run([REPORT, "--uri", uri, "--experiment", "mixed", "--method", "lora", "--calibrate", str(cal)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "old-style-run" in r.stdout and "new" in r.stdout and "+25%" in r.stdout
    (fit,) = json.loads(cal.read_text())["factors"].values()
    assert fit["n"] == 2
    assert fit["peak_mem"] == pytest.approx(1.25) and fit["tokens_per_s"] == pytest.approx(0.8)
