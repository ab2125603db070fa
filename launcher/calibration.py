"""Correction factors fitted from past runs' actuals, per GPU type and method, for the next plan.

`launch-report --calibrate` fits them from the MLflow runs and writes <output_root>/calibration.json;
`launch ... calibrate=true` reads that file (no MLflow import on the planning path) and the planner
multiplies its tokens/s, peak memory and start-up overhead by them.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from launcher.errors import ConfigError
from launcher.specs import Job

FILE = "calibration.json"
FACTORS = ("tokens_per_s", "peak_mem", "overhead")


def key(gpu: str, method: str) -> str:
    return f"{gpu}/{method}"


def fit(records: list[dict[str, Any]]) -> dict[str, Any]:
    """records: {gpu, method, tokens_per_s: ratio, peak_mem: ratio, overhead: ratio} (actual / predicted).

    Each factor is the geometric median (exp of the median log ratio) of its group: one odd run cannot
    swing it, and ratios above and below 1 weigh alike.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(key(r["gpu"], r["method"]), []).append(r)
    out: dict[str, Any] = {}
    for k, rs in groups.items():
        f: dict[str, Any] = {"n": len(rs)}
        for name in FACTORS:
            vals = [r[name] for r in rs if isinstance(r.get(name), (int, float)) and r[name] > 0]
            if vals:
                f[name] = math.exp(statistics.median(math.log(v) for v in vals))
        out[k] = f
    return {"version": 1, "factors": out}


def oom_records(root: Path) -> list[dict[str, Any]]:
    """Out-of-memory jobs (<output_root>/oom_points.jsonl, written by `launch status`): the run needed at least
    the memory it ran out at, so ran_out / predicted is a peak_mem ratio (a lower bound; counted only above 1,
    where it says the forecast was low)."""
    f = Path(root) / "oom_points.jsonl"
    out = []
    for line in f.read_text().splitlines() if f.exists() else []:
        try:
            p = json.loads(line)
            ratio = float(p["ran_out_at_gib"]) / float(p["predicted_peak_mem_gib"])
        except (ValueError, KeyError, TypeError, ZeroDivisionError):
            continue
        if ratio > 1 and p.get("gpu") and p.get("method"):
            out.append({"gpu": p["gpu"], "method": p["method"], "peak_mem": ratio})
    return out


def write(path: Path, data: dict[str, Any]) -> None:
    from launcher.plan import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def load(path: Path) -> dict[str, dict[str, float]]:
    if not path.exists():
        raise ConfigError(
            f"calibrate=true but {path} does not exist: run `launch-report --calibrate` after a job"
        )
    try:
        data = json.loads(path.read_text())
        return dict(data["factors"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is not a calibration file: delete it and run `launch-report --calibrate`"
        ) from None


def apply_calibration(job: Job, cfg: dict[str, Any]) -> Job:
    path = Path(cfg.get("output_root") or "runs") / FILE
    return replace(job, calibration=load(path))
