"""Cold-process latency of a dry-run plan, as a user sees it on the login node.

    python benchmarks/plan_latency.py [--runs 7]

Target (issue 3): <= 0.5 s on the 2-core machine. Prints median/max per case and the bare-interpreter
baseline in the same run; writes benchmarks/results/plan_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCH = str(Path(sys.executable).parent / "launch")
CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "quickstart (tiny, local)": [LAUNCH, "+budget=5", "dry_run=true"],
    "llama-3-8b, cloud (8 GPU types)": [LAUNCH, "model=llama-3-8b", "data=alpaca", "cluster=cloud", "+budget=500", "dry_run=true"],
    "llama-3-70b, cloud, full": [LAUNCH, "model=llama-3-70b", "cluster=cloud", "method=full", "+budget=5000", "dry_run=true"],
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "runs": args.runs, "cases": {}}
    with tempfile.TemporaryDirectory() as d:
        for name, cmd in CASES.items():
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                subprocess.run(cmd, cwd=d, check=True, capture_output=True)
                times.append(time.perf_counter() - t)
            med, mx = statistics.median(times), max(times)
            out["cases"][name] = {"median_s": round(med, 3), "max_s": round(mx, 3)}
            print(f"{name:<34} median {med:.3f} s  max {mx:.3f} s")
    worst = max(v["median_s"] for k, v in out["cases"].items() if "baseline" not in k)
    print(f"slowest median dry run: {worst:.3f} s ({'meets' if worst <= 0.5 else 'MISSES'} target 0.5 s)")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "plan_latency.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
