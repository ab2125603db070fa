"""`launch-report`: predicted vs actual per run, a PNG of it, syncing and calibration.

launch-report                                  # table of the experiment's runs
launch-report --method lora --gpu h100-sxm     # filters
launch-report --plot report.png                # also the predicted-vs-actual plot (logged to MLflow)
launch-report --sync runs/*                    # push run folders MLflow missed (server was down)
launch-report --calibrate                      # fit correction factors for `launch calibrate=true`
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ftlaunch.contract import metricnames as names
from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast.compare import METRICS
from ftlaunch.tracking import mlflow_run as tracking

LABEL = {
    "cost_usd": "cost $",
    "hours": "hours",
    "tokens_per_s_per_gpu": "tok/s/GPU",
    "peak_mem_gib": "peak GiB",
}


def fetch(uri: str, experiment: str, method: str | None, gpu: str | None, last: int) -> list[dict[str, Any]]:
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        raise ConfigError(
            f"no MLflow experiment {experiment!r} at {uri}: launch a job first or pass --experiment"
        )
    wanted = {"method": method, "gpu": gpu}
    for v in wanted.values():
        if v:
            _lit(v)
    runs = []
    # runs logged by this version name params plan/method, older ones method (ftlaunch/contract/metricnames.py):
    # a filter is one search per naming, newest first over both
    for old in (False, True) if method or gpu else (False,):
        keys = {k: names.legacy(names.param(k)) if old else names.param(k) for k in wanted}
        query = " and ".join(f"params.`{keys[k]}` = '{v}'" for k, v in wanted.items() if v)
        runs += c.search_runs([exp.experiment_id], query, max_results=last, order_by=["start_time DESC"])
    runs = sorted({r.info.run_id: r for r in runs}.values(), key=lambda r: -r.info.start_time)[:last]
    out = []
    for r in runs:
        p, m = r.data.params, r.data.metrics
        if names.get(p, names.param("method")) is None:
            continue  # e.g. a report run from an older version, logged among the training runs
        out.append({
            "run_id": r.info.run_id,
            "name": r.info.run_name,
            "status": r.data.tags.get("ftlaunch.status", r.info.status),
            "method": names.get(p, names.param("method")),
            "gpu": names.get(p, names.param("gpu")),
            "n_gpus": int(names.get(p, names.param("n_gpus")) or "1"),
            # the forecast each actual was compared with (ftlaunch/forecast/compare.py pairs), else the plan's own
            "predicted": {k: _first(m, names.paired(k), names.predicted(k)) for k in METRICS}
            | {"tokens_total": names.get(m, names.predicted("tokens_total"))},
            "actual": {k: names.get(m, names.actual(k)) for k in METRICS}
            | {"train_s": names.get(m, names.actual("train_s"))},
        })  # fmt: skip
    return out


def _first(logged: dict[str, float], *keys: str) -> float | None:
    return next((v for v in (names.get(logged, k) for k in keys) if v is not None), None)


def _lit(s: str) -> str:
    if not all(ch.isalnum() or ch in "._-" for ch in s):
        raise ConfigError(f"filter value {s!r} may only hold letters, digits and ._-")
    return s


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"


def table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="predicted vs actual", title_justify="left")
    for col in ("run", "method", "GPUs", "status"):
        t.add_column(col)
    for k in METRICS:
        t.add_column(f"{LABEL[k]} pred/actual (err)", justify="right")
    for r in rows:
        cells = []
        for k in METRICS:
            p, a = r["predicted"][k], r["actual"][k]
            err = f" ({(a - p) / p:+.0%})" if p and a is not None else ""
            cells.append(f"{_fmt(p)} / {_fmt(a)}{err}")
        t.add_row(r["name"], r["method"], f"{r['n_gpus']}x{r['gpu']}", r["status"], *cells)
    Console(width=200).print(t)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig = figure(rows)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def figure(rows: list[dict[str, Any]]):
    """Four predicted-vs-actual panels. Each point carries its run's number; the key under the panels names
    the runs (names are too long to print beside the points without overlap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    named = [r for r in rows if any(r["predicted"][k] and r["actual"][k] for k in METRICS)]
    n_key = len(named)
    key_rows = (n_key + 1) // 2
    fig = plt.figure(figsize=(11, 9 + 0.2 * key_rows))
    grid = fig.add_gridspec(3, 2, height_ratios=[1, 1, max(0.05, 0.055 * key_rows)], hspace=0.45)
    axes = [fig.add_subplot(grid[i // 2, i % 2]) for i in range(4)]
    markers = dict(zip(sorted({r["method"] for r in named}), "osD^v<>px*", strict=False))
    for ax, k in zip(axes, METRICS, strict=True):
        pts = [(r["predicted"][k], r["actual"][k], r["method"], i) for i, r in enumerate(named, 1)]
        pts = [pt for pt in pts if pt[0] and pt[1]]
        for method, marker in markers.items():
            mine = [pt for pt in pts if pt[2] == method]
            if mine:
                ax.scatter(
                    [p for p, *_ in mine], [a for _, a, *_ in mine], label=method, marker=marker, alpha=0.8
                )
        for p, a, _, i in pts:
            ax.annotate(str(i), (p, a), xytext=(4, 4), textcoords="offset points", fontsize=8)
        if pts:
            lo = min(min(p, a) for p, a, *_ in pts) / 1.5
            hi = max(max(p, a) for p, a, *_ in pts) * 1.5
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="actual = predicted")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                # four ticks evenly spaced in log space, two significant digits, no minor labels:
                # matplotlib's default crowds a log axis that spans less than a decade
                axis.set_major_locator(ticker.FixedLocator(_log_ticks(lo, hi)))
                axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _short(v)))
                axis.set_minor_locator(ticker.NullLocator())
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
            ax.tick_params(axis="y", labelsize=8)
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no measured runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(LABEL[k])
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
    key = fig.add_subplot(grid[2, :])
    key.axis("off")
    lines = [
        f"{i:>{len(str(n_key))}}  {r['name']}  ({r['method']}, {r['n_gpus']}x{r['gpu']})"
        for i, r in enumerate(named, 1)
    ]
    half = (len(lines) + 1) // 2
    for col, chunk in enumerate((lines[:half], lines[half:])):
        key.text(col * 0.5, 1.0, "\n".join(chunk), va="top", ha="left", fontsize=8, family="monospace",
                 transform=key.transAxes)  # fmt: skip
    fig.suptitle(f"ftlaunch: predicted vs actual ({n_key} runs)")
    return fig


def _log_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    a, b = math.log10(lo), math.log10(hi)
    return sorted({float(f"{10 ** (a + (b - a) * (i + 0.5) / n):.2g}") for i in range(n)})


def _short(v: float) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def log_plot(uri: str, experiment: str, path: Path) -> str:
    """Log the PNG into the experiment's own report experiment (<experiment>-reports), not among its
    training runs: MLflow shows files only on runs, and a report run inside the training experiment is
    listed, sorted and compared as if it were a training run. Returns the report experiment's name."""
    c = tracking.client(uri)
    name = f"{experiment}-reports"
    exp = c.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else c.create_experiment(name, tags={"ftlaunch.kind": "report"})
    run = c.create_run(exp_id, run_name=f"report-{path.stem}", tags={"ftlaunch.kind": "report",
                       "ftlaunch.report_of": experiment})  # fmt: skip
    c.log_artifact(run.info.run_id, str(path))
    c.set_terminated(run.info.run_id)
    return name


def calibration_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    recs = []
    for r in rows:
        p, a = r["predicted"], r["actual"]
        rec: dict[str, Any] = {"gpu": r["gpu"], "method": r["method"]}
        if p["tokens_per_s_per_gpu"] and a["tokens_per_s_per_gpu"]:
            rec["tokens_per_s"] = a["tokens_per_s_per_gpu"] / p["tokens_per_s_per_gpu"]
        if p["peak_mem_gib"] and a["peak_mem_gib"]:
            rec["peak_mem"] = a["peak_mem_gib"] / p["peak_mem_gib"]
        # overhead = everything but the training loop: predicted hours minus predicted train time
        if p["hours"] and p["tokens_total"] and p["tokens_per_s_per_gpu"] and a["hours"] and a["train_s"]:
            pred_over = p["hours"] * 3600 - p["tokens_total"] / (p["tokens_per_s_per_gpu"] * r["n_gpus"])
            act_over = a["hours"] * 3600 - a["train_s"]
            if pred_over > 0 and act_over > 0:
                rec["overhead"] = act_over / pred_over
        if len(rec) > 2:
            recs.append(rec)
    return recs
