"""How a Slurm job ended: OOM, TIMEOUT, NODE_FAIL, PREEMPTED, CANCELLED, FAILED or COMPLETED.

From sacct/scontrol State, ExitCode, DerivedExitCode and the end of the job's log (an out-of-memory in the
training process shows only there: CUDA OOM, or slurmstepd's memory-limit kill). Recorded once per run:
run_dir/outcome.json, tags on its MLflow run, and for an OOM a calibration point (predicted X GiB, ran out)
appended to <output_root>/oom_points.jsonl.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

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
        from launcher.specs import gpu_catalog

        mem = gpu_catalog().get(gpu, {}).get("memory_gib")
        if mem:
            return float(mem)
    v = plan.get("cluster", {}).get("mem_per_gpu_gib")
    return float(v) if v else None


def record(run_dir: Path, state: str, exit_code: str, derived: str, log: str) -> Outcome:
    """Classify and write the outcome once (outcome.json, MLflow, OOM point); later calls read it back."""
    from launcher.plan import atomic_write_text

    f = run_dir / FILE
    if f.exists():
        try:
            return Outcome(**json.loads(f.read_text()))
        except (ValueError, TypeError):
            pass
    kind = classify(state, exit_code, derived, log) or "FAILED"
    o = Outcome(
        kind,
        state.split()[0] if state else "",
        exit_code,
        _detail(kind, state, exit_code, derived, run_dir, log),
    )
    atomic_write_text(f, json.dumps(asdict(o), indent=2) + "\n")
    if kind == "OOM":
        plan = _plan(run_dir)
        point = {"run": run_dir.name, "gpu": plan.get("resources", {}).get("gpu"),
                 "method": plan.get("training", {}).get("method"), "predicted_peak_mem_gib": _predicted_peak(run_dir),
                 "ran_out_at_gib": _mem_limit_gib(run_dir, log)}  # fmt: skip
        with open(run_dir.parent / OOM_POINTS, "a") as fh:
            fh.write(json.dumps(point) + "\n")
    _to_mlflow(run_dir, o, _mem_limit_gib(run_dir, log))
    return o


def _to_mlflow(run_dir: Path, o: Outcome, ran_out_at: float | None) -> bool:
    """Tags + terminal status on the run's MLflow run; False (kept in outcome.json) when MLflow is away."""
    s_file = run_dir / "mlflow.json"
    if not s_file.exists():
        return False
    s = json.loads(s_file.read_text())
    if not s.get("run_id"):
        return False
    try:
        from launcher.tracking import client

        c = client(s["uri"])
        c.set_tag(s["run_id"], "ftlaunch.outcome", o.kind)
        c.set_tag(s["run_id"], "ftlaunch.slurm_state", o.state)
        if o.kind != "COMPLETED":
            c.set_tag(s["run_id"], "ftlaunch.status", o.kind.lower())
            c.set_tag(s["run_id"], "ftlaunch.failure", f"{o.kind}: {o.detail}")
            if o.kind == "OOM":
                from launcher import metricnames as names

                c.log_metric(s["run_id"], names.OOM_PREDICTED, _predicted_peak(run_dir))
                if ran_out_at:
                    c.log_metric(s["run_id"], names.OOM_RAN_OUT, ran_out_at)
            c.set_terminated(s["run_id"], status="KILLED" if o.kind == "CANCELLED" else "FAILED")
        return True
    except Exception:  # noqa: BLE001 - tracking is best effort; outcome.json holds it
        return False
