"""Workload -> hours -> dollars: the budget calculator of docs/decision-flow.md, plus start-up and checkpoint
overheads."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Start-up: process launch + imports + loading weights from shared storage. On a GPU node 120 s fixed
# (assumption: the torch stack's imports take ~10 s alone, docs/stack-facts.md, then CUDA/NCCL/DeepSpeed
# initialisation) + weights at 1 GB/s (assumption).
STARTUP_S = 120.0
# The CPU "device" (this machine): the recipe's measured start-up, process start to first step plus the final
# save (actuals wall_s - train_s): 7.6 s and 6.4 s on a quiet machine (benchmarks/results/cpu_quickstart.json,
# commit 5a0f0ed); 27.7 s and 36.6 s at load average 13-20 on 2 cores (results/cpu_quickstart-loaded.json).
CPU_STARTUP_S = 7.0
LOAD_GB_S = 1.0
# Checkpoint writes to shared storage at 1 GB/s (assumption): a full-FT checkpoint is weights + Adam state.
CKPT_GB_S = 1.0


@dataclass(frozen=True)
class Cost:
    tokens_total: float
    steps: int
    train_hours: float
    overhead_hours: float
    hours: float
    gpu_hours: float
    usd: float


def workload_tokens(tokens_per_sample: float, n_samples: int, epochs: float) -> float:
    # Budget calculator (docs/decision-flow.md): tokens_per_sample * n_samples * epochs.
    return tokens_per_sample * n_samples * epochs


def startup_s(device: str) -> float:
    return CPU_STARTUP_S if device == "cpu" else STARTUP_S


def optimizer_steps(n_samples: int, epochs: float, global_batch: int) -> int:
    return max(1, math.ceil(n_samples * epochs / global_batch))


def estimate(
    tokens_total: float,
    tps_per_gpu: float,
    n_gpus: int,
    price_per_gpu_hour: float,
    steps: int,
    model_bytes: float,
    checkpoint_bytes: float,
    checkpoint_every: int,
    overhead_factor: float = 1.0,
    startup_s: float = STARTUP_S,
) -> Cost:
    # Budget calculator (docs/decision-flow.md): hours = tokens_total / (tokens_per_s_per_gpu * num_gpus), with
    # utilization already inside tps_per_gpu (ftlaunch/forecast/throughput.py); cost = hours * $/GPU-hour * num_gpus.
    train_h = tokens_total / (tps_per_gpu * n_gpus) / 3600
    n_ckpt = steps // max(1, checkpoint_every)
    overhead_s = startup_s + model_bytes / (LOAD_GB_S * 1e9) + n_ckpt * checkpoint_bytes / (CKPT_GB_S * 1e9)
    overhead_s *= overhead_factor
    hours = train_h + overhead_s / 3600
    return Cost(
        tokens_total=tokens_total,
        steps=steps,
        train_hours=train_h,
        overhead_hours=overhead_s / 3600,
        hours=hours,
        gpu_hours=hours * n_gpus,
        usd=hours * n_gpus * price_per_gpu_hour,
    )
