"""ftlaunch/tracking/summary.py: the predicted-vs-actual table, its markdown twin, and where-to-look-next lines."""

import json

import pytest
from rich.console import Console

from ftlaunch.contract.plan import read_plan
from ftlaunch.forecast import compare
from ftlaunch.tracking import summary
from tests.conftest import run_launch


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    d = tmp_path_factory.mktemp("summary")
    r = run_launch("+budget=5", "dry_run=true", cwd=d)
    assert r.returncode == 0, r.stderr
    (p,) = d.glob("runs/*/plan.json")
    return read_plan(p)


def _actuals(plan, factor: float) -> dict:
    fc = plan.forecast
    return {"cost_usd": fc.cost_usd * factor, "wall_s": fc.hours * 3600 * factor, "steps": 16,
            "tokens_per_s_per_gpu": fc.tokens_per_s_per_gpu * factor, "peak_mem_gb": fc.peak_mem_gib * factor,
            "stop_reason": "completed", "final_loss": 5.9}  # fmt: skip


def test_rows_pair_through_compare_and_show_the_error(plan):
    a = _actuals(plan, 1.5)
    rows = summary.rows(plan, a)
    assert [r[0] for r in rows] == ["cost", "time", "tokens/s per GPU", "peak memory per GPU"]
    pairs = compare.pairs(plan, a)
    for (what, p, act, err), (k, label) in zip(rows, summary.ROWS, strict=True):
        assert what == label
        actual, predicted = pairs[k]
        assert p == summary._fmt(k, predicted) and act == summary._fmt(k, actual)
        assert err == f"{(actual - predicted) / predicted * 100:+.0f}%"
    assert rows[1][3] == "+50%"


def test_before_the_job_ends_actuals_are_dashes(plan):
    rows = summary.rows(plan, None)
    assert all(a == "-" and e == "-" for _, _, a, e in rows)
    assert (
        summary.summary_markdown(plan, None)
        .replace(summary.GAP, "")
        .startswith("| not finished yet | cost |")
    )


def test_markdown_is_the_table_alone_quantities_as_columns(plan):
    # MLflow's run page shows 100 px of the description (tests/test_mlflow_ui.py checks it is not cut):
    # a header and three rows, nothing else
    md = summary.summary_markdown(plan, _actuals(plan, 0.5)).replace(summary.GAP, "").splitlines()
    assert md[0] == "| completed at step 16/16 | cost | time | tokens/s per GPU | peak memory per GPU |"
    assert md[1] == "|---|---:|---:|---:|---:|"
    assert [ln.split(" | ")[0] for ln in md[2:]] == ["| predicted", "| actual", "| error"]
    assert md[2].startswith("| predicted | $") and md[4] == "| error | -50% | -50% | -50% | -50% |"
    assert summary.plan_line(plan).startswith("lora sft on 1 x cpu (1 node), ZeRO-0")


def test_terminal_table_and_next_steps(plan, tmp_path):
    (tmp_path / "mlflow.json").write_text(
        json.dumps({"uri": "http://mlflow.internal:5000", "run_id": "abc123", "experiment_id": "7"})
    )
    out = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    out.print(summary.summary_table(plan, _actuals(plan, 2.0), summary.next_steps(tmp_path)))
    text = out.export_text()
    assert "+100%" in text and "tokens/s per GPU" in text
    assert "http://mlflow.internal:5000/#/experiments/7/runs/abc123?workflowType=machine_learning" in text
    sqlite = {"uri": "sqlite:////x/mlflow.db", "run_id": "r1", "experiment_id": "1"}
    (tmp_path / "mlflow.json").write_text(json.dumps(sqlite))
    (_, _), (label, line), _ = summary.next_steps(tmp_path)
    assert label == "MLflow" and line.startswith("mlflow ui --backend-store-uri sqlite:////x/mlflow.db")
    (tmp_path / "mlflow.json").write_text(json.dumps({"uri": "sqlite:////x/mlflow.db", "run_id": None}))
    assert "launch-report --sync" in summary.next_steps(tmp_path)[1][1]


def test_module_prints_a_run_folder_or_refuses_in_one_line(plan, tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "ftlaunch.tracking.summary", plan.run_dir], capture_output=True, text=True
    )
    assert r.returncode == 0 and "no actuals yet" in r.stdout and "predicted" in r.stdout, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "ftlaunch.tracking.summary", str(tmp_path)], capture_output=True, text=True
    )
    assert r.returncode == 2 and r.stderr == f"error: {tmp_path} is not a run folder (no plan.json)\n"
