"""Forecast vs actuals: which measured number answers which predicted one (pure, no I/O)."""

from __future__ import annotations

from typing import Any

from launcher.plan import Plan

METRICS = ("cost_usd", "hours", "tokens_per_s_per_gpu", "peak_mem_gib")


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
    mem = actuals.get("peak_mem_gb")  # GiB (recipes/actuals.py)
    if isinstance(mem, (int, float)):
        # GPU: torch's max_memory_allocated sees neither allocator slack nor CUDA context, so compare it
        # with the allocated part of the forecast. CPU: peak RSS is the whole process, compare with total.
        overhead = fc.mem_breakdown_gib.get("overhead", 0.0) if plan.resources.gpu != "cpu" else 0.0
        out["peak_mem_gib"] = (float(mem), fc.peak_mem_gib - overhead)
    return out


def errors(plan: Plan, actuals: dict[str, Any]) -> dict[str, float]:
    """error_ratio_<m> = actual / predicted and error_pct_<m> = (actual - predicted) / predicted * 100."""
    out: dict[str, float] = {}
    for k, (a, p) in pairs(plan, actuals).items():
        if p:
            out[f"error_ratio_{k}"] = a / p
            out[f"error_pct_{k}"] = (a - p) / p * 100
    return out
