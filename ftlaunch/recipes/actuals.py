"""Measured actuals: the spend ledger (kept across requeues) and run_dir/actuals.json at the end.

The ledger run_dir/spend.json holds the wall time and cost of every earlier segment of this run (a segment is
one process lifetime: first start, each requeue). A new segment adds its own elapsed time to those totals, so
a requeued job never counts the earlier time twice; a killed segment loses at most the last few seconds.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from ftlaunch.contract.plan import Plan, atomic_write_text

LEDGER = "spend.json"
ACTUALS = "actuals.json"
GIB = 2**30


class Ledger:
    def __init__(self, run_dir: Path, n_gpus: int, price_per_gpu_hour: float, t0: float) -> None:
        self.path = run_dir / LEDGER
        self.n_gpus = n_gpus
        self.price = price_per_gpu_hour
        self.t0 = t0  # time.monotonic() when this process started
        prior = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.prior_wall_s = float(prior.get("wall_s", 0.0))
        self.prior_cost = float(prior.get("cost_usd", 0.0))
        self.segment = int(prior.get("segments", 0)) + 1
        self._saved = 0.0

    def segment_s(self) -> float:
        return time.monotonic() - self.t0

    def wall_s(self) -> float:
        return self.prior_wall_s + self.segment_s()

    def gpu_hours(self) -> float:
        return self.wall_s() / 3600 * self.n_gpus

    def cost_usd(self) -> float:
        return self.prior_cost + self.segment_s() / 3600 * self.n_gpus * self.price

    def rate_usd_per_s(self) -> float:
        return self.n_gpus * self.price / 3600

    def save(self, every_s: float = 0.0) -> None:
        """Persist the totals (rank 0 only); with every_s, at most that often."""
        now = time.monotonic()
        if every_s and now - self._saved < every_s:
            return
        self._saved = now
        d = {
            "segments": self.segment,
            "wall_s": self.wall_s(),
            "gpu_hours": self.gpu_hours(),
            "cost_usd": self.cost_usd(),
            "price_per_gpu_hour": self.price,
            "n_gpus": self.n_gpus,
            "updated": time.time(),
        }
        atomic_write_text(self.path, json.dumps(d, indent=2) + "\n")


def budget_limit(plan: Plan) -> float | None:
    """The lowest of plan.budget_usd, plan.cost_cap_usd and FTLAUNCH_MAX_COST_USD (an operator's override)."""
    limits = [plan.budget_usd, plan.cost_cap_usd]
    env = os.environ.get("FTLAUNCH_MAX_COST_USD")
    if env:
        limits.append(float(env))
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def peak_memory() -> dict[str, Any]:
    """GPU: torch.cuda max allocated / reserved (max over ranks). CPU: this process's peak RSS."""
    import torch

    if torch.cuda.is_available():
        alloc = torch.cuda.max_memory_allocated()
        reserved = torch.cuda.max_memory_reserved()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.tensor([alloc, reserved], dtype=torch.float64, device="cuda")
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            alloc, reserved = t.tolist()
        return {
            "peak_mem_gb": alloc / GIB,
            "peak_mem_reserved_gb": reserved / GIB,
            "peak_mem_source": "torch.cuda.max_memory_allocated (max over ranks), GiB",
        }
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss = rss_kib if sys.platform == "darwin" else rss_kib * 1024
    return {
        "peak_mem_gb": rss / GIB,
        "peak_mem_reserved_gb": None,
        "peak_mem_source": "cpu peak RSS (rank 0), GiB",
    }


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name()}"
    return "cpu"


def losses(log_history: list[dict]) -> list[float]:
    return [h["loss"] for h in log_history if "loss" in h]


def build(
    plan: Plan,
    ledger: Ledger,
    *,
    steps: int,
    log_history: list[dict],
    tokens_seen: int,
    segment_tokens: int,
    train_s: float,
    world_size: int,
    stop_reason: str,
    resumed_from: str | None,
    memory: dict[str, Any],
) -> dict[str, Any]:
    """memory: peak_memory(), which every rank must call (it reduces over ranks on GPU)."""
    ls = losses(log_history)
    tps = segment_tokens / train_s if train_s > 0 else 0.0
    return {
        "job_name": plan.job_name,
        "method": plan.training.method,
        "objective": plan.training.objective,
        "stop_reason": stop_reason,
        "steps": steps,
        "max_steps": plan.training.max_steps,
        "final_loss": ls[-1] if ls else None,
        "loss_first": ls[0] if ls else None,
        "tokens_seen": tokens_seen,
        "tokens_per_s": tps,
        "tokens_per_s_per_gpu": tps / max(world_size, 1),
        "train_s": train_s,  # this segment's training loop
        "wall_s": ledger.wall_s(),  # all segments, process start to end
        "segment_wall_s": ledger.segment_s(),
        "segments": ledger.segment,
        "gpu_hours": ledger.gpu_hours(),
        "cost_usd": ledger.cost_usd(),
        "device": device_name(),
        "world_size": world_size,
        "n_gpus": plan.resources.n_gpus,
        "resumed_from": resumed_from,
        **memory,
        "written": time.time(),
    }


def write(run_dir: Path, actuals: dict[str, Any]) -> None:
    atomic_write_text(run_dir / ACTUALS, json.dumps(actuals, indent=2) + "\n")
