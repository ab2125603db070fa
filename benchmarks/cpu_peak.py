"""Measured fp32 matmul rate of this machine's CPU: the "peak" of the cpu device (conf/gpu/cpu.yaml).

python benchmarks/cpu_peak.py     # prints TFLOP/s; writes benchmarks/results/cpu_peak.json
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch


def main() -> None:
    n, reps = 1024, 20
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    dt = time.perf_counter() - t
    tflops = 2 * n**3 * reps / dt / 1e12
    out = {
        "tflops_fp32": round(tflops, 4),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "n": n,
    }
    print(f"fp32 matmul {n}x{n}: {tflops:.3f} TFLOP/s on {torch.get_num_threads()} threads")
    res = Path(__file__).resolve().parent / "results"
    res.mkdir(exist_ok=True)
    (res / "cpu_peak.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
