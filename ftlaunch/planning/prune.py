"""Branch and bound for the planner's search: skip a shape (method, GPU, count, layout, reference,
checkpointing) whose cheapest possible plan already loses to a plan found, without changing the choice.

Bound: a micro-step takes at least its matmul+attention FLOPs at the GPU's fitted efficiency (the first
term of throughput.step_time's roofline max; every other term there is >= 0), for at least the tokens the
smallest micro-batch processes (padding only grows with the micro-batch, ftlaunch/forecast/workload.py), plus the
start-up overhead (cost.estimate; checkpoint writes >= 0). A shape is skipped only when this bound is
strictly above, after the choice's own rounding (planner._key), an in-budget plan already found that
every selection of the decision flow could pick instead: same method, GPU type, parameter offload and
"ZeRO-3 or one GPU" flag. So the choice, the best plan of each method and each GPU type, and the cheapest
feasible plan are the exhaustive search's; only worse layouts drop out of the alternatives table.
"""

from __future__ import annotations

from dataclasses import replace

from ftlaunch.forecast import cost as costs
from ftlaunch.forecast.params import ParamCounts
from ftlaunch.forecast.setup import Setup
from ftlaunch.forecast.specs import GpuSpec, Job, ModelSpec
from ftlaunch.forecast.throughput import efficiency_for, train_flops_per_token


def group(method: str, gpu: GpuSpec, n: int, zero: int, off_par: bool) -> tuple:
    """Candidates the decision flow's selections never tell apart (planner.choose filters)."""
    return method, gpu.name, off_par, zero == 3 or n == 1


def bound(
    p: ParamCounts, gpu: GpuSpec, n: int, work_flops: float, f_tps: float, f_over: float
) -> tuple[float, float]:
    """(hours, dollars) no micro-batch of a shape can beat: work_flops is the whole run's training FLOPs at
    the smallest micro-batch (processed tokens x throughput.train_flops_per_token)."""
    train_s = work_flops / (gpu.bf16_tflops * 1e12 * efficiency_for(gpu).mfu * f_tps * n)
    overhead_s = (costs.startup_s(gpu.name) + 2.0 * p.total / (costs.LOAD_GB_S * 1e9)) * f_over
    hours = (train_s + overhead_s) / 3600
    return hours, hours * n * (gpu.price_per_gpu_hour or 0.0)


def flops_per_token(m: ModelSpec, p: ParamCounts, s: Setup, pad_len: float) -> float:
    """Training FLOPs per processed token of a setup run at pad_len (depends on method, checkpointing,
    objective and attention only, so the planner computes it once per kind, not per shape)."""
    return train_flops_per_token(m, p, s if pad_len == s.seq_len else replace(s, seq_len=pad_len))


def beaten(job: Job, lb: tuple[float, float], best: tuple[float, float] | None) -> bool:
    """True when the bound (hours, usd) loses to `best` (rounded hours, rounded usd) under planner._key."""
    if best is None:
        return False
    hours, usd = round(lb[0], 2), round(lb[1], 2)
    if job.optimize == "time":  # the choice sorts by hours, the cheapest-feasible report by dollars
        return hours > best[0] and usd > best[1]
    return usd > best[1]
