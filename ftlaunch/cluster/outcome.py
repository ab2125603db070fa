"""How a Slurm job ended: OOM, TIMEOUT, NODE_FAIL, PREEMPTED, CANCELLED, FAILED or COMPLETED.

From sacct/scontrol State, ExitCode, DerivedExitCode and the end of the job's log (an out-of-memory in the
training process shows only there: CUDA OOM, or slurmstepd's memory-limit kill). Recorded once per run:
run_dir/outcome.json (its MLflow run is told by ftlaunch/tracking/outcome.py), and for an OOM a calibration point (predicted X GiB, ran out)
appended to <output_root>/oom_points.jsonl.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ftlaunch.config.catalog import gpu_catalog
from ftlaunch.contract.plan import atomic_write_text

TERMINAL = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
    "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT",
}  # fmt: skip
KINDS = ("OOM", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "CANCELLED", "FAILED")
FILE = "outcome.json"
OOM_POINTS = "oom_points.jsonl"
# torch.OutOfMemoryError / "CUDA out of memory" from the recipe; slurmstepd when a step passes --mem
# (JobAcctGatherParams=OverMemoryKill) or the cgroup OOM killer
_OOM = re.compile(
    r"CUDA out of memory|OutOfMemoryError|exceeded memory limit|Exceeded job memory limit|oom[-_ ]kill|"
    r"Killed process \d+ .*out of memory",
    re.I,
)


@dataclass(frozen=True)
class Outcome:
    kind: str  # COMPLETED or one of KINDS
    state: str
    exit_code: str
    detail: str
    predicted_peak_gib: float | None = None  # OOM: what the plan forecast per GPU ...
    ran_out_at_gib: float | None = None  # ... and what it ran out at (a calibration point)


def classify(state: str, exit_code: str = "", derived: str = "", log: str = "") -> str | None:
    """Failure kind of a job in a terminal state; None while it runs; COMPLETED when it ended well."""
    s = (state or "").split()[0].rstrip("+") if state else ""
    if s not in TERMINAL:
        return None
    if s == "OUT_OF_MEMORY" or (s != "COMPLETED" and _OOM.search(log or "")):
        return "OOM"
    if s in ("TIMEOUT", "DEADLINE"):
        return "TIMEOUT"
    if s in ("NODE_FAIL", "BOOT_FAIL"):
        return "NODE_FAIL"
    if s in ("PREEMPTED", "CANCELLED"):
        return s
    if s == "COMPLETED":
        return "COMPLETED"
    return "FAILED"


def _detail(kind: str, state: str, exit_code: str, derived: str, run_dir: Path, log: str = "") -> str:
    if kind == "OOM":
        pred = _predicted_peak(run_dir)
        limit = _mem_limit_gib(run_dir, log)
        return (f"predicted {pred:.3g} GiB per GPU, ran out" + (f" at {limit:.3g} GiB per GPU" if limit else "")
                + "; a calibration point for the memory forecast")  # fmt: skip
    if kind == "TIMEOUT":
        return "hit the time limit: the plan's hours were too low, or it needs checkpointed segments"
    if kind == "NODE_FAIL":
        return "a node failed; requeue with `scontrol requeue` (resumes from the last checkpoint)"
    if kind == "PREEMPTED":
        return "preempted by a higher-priority job"
    if kind == "CANCELLED":
        return "cancelled (scancel)"
    if kind == "FAILED":
        return f"exit code {exit_code or '?'} (derived {derived or '-'}); see the log"
    return "completed"


def _plan(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return {}


def _predicted_peak(run_dir: Path) -> float:
    return float(_plan(run_dir).get("forecast", {}).get("peak_mem_gib") or 0.0)


_GPU_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError", re.I)


def _mem_limit_gib(run_dir: Path, log: str = "") -> float | None:
    """What it ran out of: the GPU's memory for a CUDA OOM, else the job's --mem per GPU (host memory)."""
    plan = _plan(run_dir)
    gpu = plan.get("resources", {}).get("gpu")
    if gpu and gpu != "cpu" and _GPU_OOM.search(log or ""):
        mem = gpu_catalog().get(gpu, {}).get("memory_gib")
        if mem:
            return float(mem)
    v = plan.get("cluster", {}).get("mem_per_gpu_gib")
    return float(v) if v else None


def read(run_dir: Path) -> Outcome | None:
    """The outcome recorded for a run folder, or None (not ended, or not classified yet)."""
    try:
        return Outcome(**json.loads((run_dir / FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def record(run_dir: Path, state: str, exit_code: str, derived: str, log: str) -> Outcome:
    """Classify and write the outcome once (outcome.json, and an OOM point); later calls read it back.
    The caller pushes a new outcome to MLflow (ftlaunch/tracking/outcome.py)."""
    done = read(run_dir)
    if done is not None:
        return done
    kind = classify(state, exit_code, derived, log) or "FAILED"
    ran_out = _mem_limit_gib(run_dir, log) if kind == "OOM" else None
    o = Outcome(
        kind,
        state.split()[0] if state else "",
        exit_code,
        _detail(kind, state, exit_code, derived, run_dir, log),
        predicted_peak_gib=_predicted_peak(run_dir) if kind == "OOM" else None,
        ran_out_at_gib=ran_out,
    )
    atomic_write_text(run_dir / FILE, json.dumps(asdict(o), indent=2) + "\n")
    if kind == "OOM":
        plan = _plan(run_dir)
        point = {"run": run_dir.name, "gpu": plan.get("resources", {}).get("gpu"),
                 "method": plan.get("training", {}).get("method"), "predicted_peak_mem_gib": o.predicted_peak_gib,
                 "ran_out_at_gib": ran_out}  # fmt: skip
        with open(run_dir.parent / OOM_POINTS, "a") as fh:
            fh.write(json.dumps(point) + "\n")
    return o
