"""The README's main job (tiny model, sample data, this node), measured: forecast vs actual, then the same
job again planned with calibrate=true, to show what calibration does to the error.

    python benchmarks/cpu_quickstart.py      # ~1 min; writes benchmarks/results/cpu_quickstart.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ftlaunch.contract import metricnames as names  # noqa: E402
from ftlaunch.contract.plan import read_plan  # noqa: E402
from ftlaunch.forecast.compare import errors, pairs  # noqa: E402

BIN = Path(sys.executable).parent
# cpu_quickstart.json: a quiet machine; pass another name when the machine is shared and busy
OUT = sys.argv[1] if len(sys.argv) > 1 else "cpu_quickstart.json"


def run(d: Path, *extra: str) -> Path:
    subprocess.run([str(BIN / "launch"), "+budget=5", *extra], cwd=d, check=True, capture_output=True)
    return max(d.glob("runs/*/actuals.json"), key=lambda p: p.stat().st_mtime).parent


def measure(run_dir: Path) -> dict:
    plan = read_plan(run_dir / "plan.json")
    actuals = json.loads((run_dir / "actuals.json").read_text())
    err = errors(plan, actuals)
    return {
        "calibrated": plan.forecast.calibrated,
        "pairs": {k: {"actual": a, "predicted": p} for k, (a, p) in pairs(plan, actuals).items()},
        "error_pct": {q: err[names.error_pct(q)] for q in names.COMPARED if names.error_pct(q) in err},
        "train_s": actuals["train_s"],
        "wall_s": actuals["wall_s"],
        # the recipe's start-up + final save: ftlaunch/forecast/cost.py CPU_STARTUP_S points here
        "startup_s": actuals["wall_s"] - actuals["train_s"],
    }


def main() -> None:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        first = measure(run(d))
        subprocess.run([str(BIN / "launch-report"), "--calibrate"], cwd=d, check=True, capture_output=True)
        second = measure(run(d, "calibrate=true"))
    for name, m in (("uncalibrated", first), ("calibrated", second)):
        errs = "  ".join(f"{k} {v:+.1f}%" for k, v in m["error_pct"].items())
        print(f"{name:>12}: {errs}")
    (HERE / "results").mkdir(exist_ok=True)
    # The machine is shared: the 1-minute load average (2 cores) says how disturbed these timings are.
    out = {"runs": [first, second], "load_avg_1min": [load, os.getloadavg()[0]]}
    (HERE / "results" / OUT).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
