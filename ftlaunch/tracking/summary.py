"""How a finished run did against its plan, as a person reads it: a rich table for the terminal, the same
table as markdown for the MLflow run's description, and where to look next.

The pairing of measured and predicted numbers is ftlaunch/forecast/compare.py pairs(); this module only formats it.
Callers: the local executor at the end of a run, `launch status` for Slurm jobs, tracking (description).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftlaunch.contract.plan import Plan
from ftlaunch.forecast import compare

ROWS = (
    ("cost_usd", "cost"),
    ("hours", "time"),
    ("tokens_per_s_per_gpu", "tokens/s per GPU"),
    ("peak_mem_gib", "peak memory per GPU"),
)
# The MLflow UI opens in the GenAI view unless told otherwise (mlflow 3.17 keeps the view in the URL /
# browser storage, not in the experiment): our links ask for the training view.
UI_VIEW = "workflowType=machine_learning"
GAP = "&nbsp;&nbsp;"  # the description table has no cell padding in the UI


def _fmt(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    if metric == "cost_usd":
        return f"${v:,.4f}" if v < 1 else f"${v:,.2f}"
    if metric == "hours":
        return f"{v * 3600:.0f} s" if v < 1 / 60 else f"{v * 60:.1f} min" if v < 1 else f"{v:.2f} h"
    if metric == "peak_mem_gib":
        return f"{v:.1f} GiB" if v >= 1 else f"{v * 1024:.0f} MiB"
    return f"{v:,.0f}" if v >= 10 else f"{v:,.2f}"


def rows(plan: Plan, actuals: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """(what, predicted, actual, error) per compared metric; actual and error are '-' until measured."""
    measured = compare.pairs(plan, actuals or {})
    fc = plan.forecast
    predicted = {
        "cost_usd": fc.cost_usd,
        "hours": fc.hours,
        "tokens_per_s_per_gpu": fc.tokens_per_s_per_gpu,
        "peak_mem_gib": fc.peak_mem_gib,
    }
    out = []
    for k, label in ROWS:
        if k in measured:
            a, p = measured[k]
            err = f"{(a - p) / p * 100:+.0f}%" if p else "-"
            out.append((label, _fmt(k, p), _fmt(k, a), err))
        else:
            out.append((label, _fmt(k, predicted[k]), "-", "-"))
    return out


def headline(plan: Plan, actuals: dict[str, Any] | None) -> str:
    if not actuals:
        return f"{plan.job_name}: no actuals yet (the job has not finished)"
    stop = actuals.get("stop_reason", "completed")
    text = f"{plan.job_name}: {stop} at step {actuals.get('steps', '?')}/{plan.training.max_steps}"
    if isinstance(actuals.get("final_loss"), (int, float)):
        text += f", final loss {actuals['final_loss']:.4g}"
    return text


def next_steps(run_dir: str | Path) -> list[tuple[str, str]]:
    """(label, text) lines saying where to look next: the run folder, the MLflow run, the report."""
    run_dir = Path(run_dir)
    out = [("run folder", f"{run_dir}  (train.log, actuals.json)")]
    state_file = run_dir / "mlflow.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    uri, run_id, exp_id = state.get("uri"), state.get("run_id"), state.get("experiment_id")
    if uri and run_id and exp_id:
        page = f"#/experiments/{exp_id}/runs/{run_id}?{UI_VIEW}"
        if uri.startswith(("http://", "https://")):
            out.append(("MLflow", f"{uri.rstrip('/')}/{page}"))
        else:
            out.append(("MLflow", f"mlflow ui --backend-store-uri {uri}  then  http://127.0.0.1:5000/{page}"))
    elif uri:
        out.append(("MLflow", f"not synced yet: launch-report --sync {run_dir}"))
    out.append(("all runs", "launch-report  (predicted vs actual per run; --plot report.png)"))
    return out


def summary_table(
    plan: Plan, actuals: dict[str, Any] | None, next_steps: list[tuple[str, str]] | None = None
):
    """A rich renderable: predicted vs actual with errors, then where to look next."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text(headline(plan, actuals), style="bold", no_wrap=True, overflow="ignore")
    t = Table()
    t.add_column("")
    for col in ("predicted", "actual", "error"):
        t.add_column(col, justify="right")
    for what, p, a, e in rows(plan, actuals):
        t.add_row(what, p, a, e)
    if not next_steps:
        return Group(head, t)
    # plain lines, never wrapped inside a cell, so a terminal keeps each link whole and clickable
    width = max(len(label) for label, _ in next_steps) + 2
    links = [
        Text.assemble((label.ljust(width), "bold cyan"), text, no_wrap=True, overflow="ignore")
        for label, text in next_steps
    ]
    return Group(head, t, *links)


def status(plan: Plan, actuals: dict[str, Any] | None) -> str:
    """How far the run got, in a few words (the description table's corner cell)."""
    if not actuals:
        return "not finished yet"
    return f"{actuals.get('stop_reason', 'completed')} at step {actuals.get('steps', '?')}/{plan.training.max_steps}"


def summary_markdown(plan: Plan, actuals: dict[str, Any] | None) -> str:
    """The MLflow run description: predicted vs actual and nothing else. MLflow 3.17's run page shows 100 px
    of a description and fades the rest under "Show more" (RunViewDescriptionBox, maxHeight 100): a header
    and three rows fit whole, a table with a row per quantity (or a headline above it) does not. So the
    quantities are columns, and how far the run got sits in the corner cell; the plan is the tag
    ftlaunch.plan (plan_line) and its params plan/*."""
    table = rows(plan, actuals)

    def line(first: str, cells) -> str:
        # GAP keeps "+30%" and "+30%" apart; measured in tests/test_mlflow_ui.py: an em or en space widened
        # the table enough that a 1000 px wide window cut it, two no-break spaces do not
        return "| " + " | ".join([first, *(f"{GAP}{c}" for c in cells)]) + " |"

    lines = [line(status(plan, actuals), (w for w, *_ in table)), "|---|" + "---:|" * len(table)]
    lines += [
        line(label, (r[i] for r in table)) for i, label in enumerate(("predicted", "actual", "error"), 1)
    ]
    return "\n".join(lines) + "\n"


def plan_line(plan: Plan) -> str:
    """The plan in one line and why it was chosen (the MLflow tag ftlaunch.plan)."""
    r, t = plan.resources, plan.training
    return (
        f"{t.method} {t.objective} on {r.n_gpus} x {r.gpu} ({r.nodes} node{'s' if r.nodes > 1 else ''}), "
        f"ZeRO-{r.zero_stage}, micro batch {t.micro_batch} x accum {t.grad_accum}, {t.max_steps} steps. "
        f"Why: {plan.reason}."
    )


def show(run_dir: str | Path, console=None) -> None:
    """Print a run folder's summary (what `launch status` and the end of a local run show)."""
    from rich.console import Console

    from ftlaunch.contract.plan import read_plan

    run_dir = Path(run_dir)
    f = run_dir / "actuals.json"
    actuals = json.loads(f.read_text()) if f.exists() else None
    console = console or Console(highlight=False)
    console.print(summary_table(read_plan(run_dir / "plan.json"), actuals, next_steps(run_dir)), crop=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m ftlaunch.tracking.summary RUN_DIR...`: predicted vs actual for run folders."""
    import sys

    for d in argv if argv is not None else sys.argv[1:]:
        if not (Path(d) / "plan.json").exists():
            print(f"error: {d} is not a run folder (no plan.json)", file=sys.stderr)
            return 2
        show(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
