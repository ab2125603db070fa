"""Forecast vs actuals: which measured number answers which predicted one (pure, no I/O).

The one pairing: tracking logs it (<m>/predicted_paired beside <m>/actual, ftlaunch/contract/metricnames.py),
launch-report's table and `--calibrate` read those, and the planner applies a memory factor to the same part
of its forecast.
"""

from __future__ import annotations

from typing import Any

from ftlaunch.contract import metricnames as names
from ftlaunch.contract.plan import Plan

METRICS = names.COMPARED


def pairs(plan: Plan, actuals: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """metric -> (actual, predicted), for those the run measured."""
    fc = plan.forecast
    out: dict[str, tuple[float, float]] = {}
    if isinstance(actuals.get("cost_usd"), (int, float)):
        out["cost_usd"] = (float(actuals["cost_usd"]), fc.cost_usd)
    if isinstance(actuals.get("wall_s"), (int, float)):
        out["hours"] = (actuals["wall_s"] / 3600, fc.hours)
    if isinstance(actuals.get("tokens_per_s_per_gpu"), (int, float)) and actuals["tokens_per_s_per_gpu"] > 0:
        out["tokens_per_s_per_gpu"] = (float(actuals["tokens_per_s_per_gpu"]), fc.tokens_per_s_per_gpu)
    mem = actuals.get("peak_mem_gb")  # GiB (ftlaunch/recipes/actuals.py)
    if isinstance(mem, (int, float)):
        overhead = fc.mem_breakdown_gib.get("overhead", 0.0)
        out["peak_mem_gib"] = (float(mem), measured_memory(fc.peak_mem_gib, overhead, plan.resources.gpu))
    return out


def measured_memory(total: float, overhead: float, gpu: str) -> float:
    """The part of a memory forecast that ftlaunch/recipes/actuals.py measures. GPU: torch's max_memory_allocated
    sees neither allocator slack nor CUDA context, so the forecast less its overhead. CPU: peak RSS is the
    whole process, so the total."""
    return total if gpu == "cpu" else total - overhead


def errors(plan: Plan, actuals: dict[str, Any]) -> dict[str, float]:
    """<m>/error_ratio = actual / predicted and <m>/error_pct = (actual - predicted) / predicted * 100."""
    out: dict[str, float] = {}
    for k, (a, p) in pairs(plan, actuals).items():
        if p:
            out[names.error_ratio(k)] = a / p
            out[names.error_pct(k)] = (a - p) / p * 100
    return out
