"""Correction factors fitted from past runs' actuals, per GPU type and method (`launch-report --calibrate`),
written to <output_root>/calibration.json for the planner (ftlaunch/planning/calibration.py applies them).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from ftlaunch.contract.plan import atomic_write_text
from ftlaunch.planning.calibration import FACTORS, key


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
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
