"""System metrics (CPU and GPU utilisation, memory) into the run's MLflow run while it trains, via MLflow's
own SystemMetricsMonitor (psutil; nvidia-ml-py for NVIDIA GPUs). Local rank 0 of each node samples its
machine; several nodes log as system/<node>/... Anything missing or unreachable turns it off, never the job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftlaunch.contract.plan import Plan

# About this many samples over the forecast run time, so a 2-minute run and a 10-hour run both get a
# readable curve (MLflow's default, one per 10 s, leaves a short run a point or two). Each sample also
# reads the run back (~0.05 s on a busy 2-core node), so not more often than every 0.5 s.
SAMPLES_PER_RUN = 200


def interval_s(plan: Plan) -> float:
    return min(max(plan.forecast.hours * 3600 / SAMPLES_PER_RUN, 0.5), 30.0)


def start(plan: Plan, run_dir: Path, resumed: bool):
    """A started monitor (call .finish() after training), or None when it cannot run here."""
    state_file = run_dir / "mlflow.json"
    if int(os.environ.get("LOCAL_RANK", 0)) != 0 or not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    if not state.get("run_id"):
        return None  # the store was down at launch; the run is created later by a sync
    try:
        import psutil  # noqa: F401 - what the CPU monitor needs
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        node = os.environ.get("SLURM_NODEID") if plan.resources.nodes > 1 else None
        monitor = SystemMetricsMonitor(
            state["run_id"],
            sampling_interval=interval_s(plan),
            resume_logging=resumed,
            node_id=f"node_{node}" if node is not None else None,
            tracking_uri=state["uri"],
        )
        monitor.start()
        return monitor
    except Exception as e:  # noqa: BLE001 - no psutil, store down: train without system metrics
        print(f"system metrics off: {type(e).__name__}: {e}", flush=True)
        return None


def finish(monitor) -> None:
    if monitor is None:
        return
    try:
        monitor.finish()
    except Exception as e:  # noqa: BLE001
        print(f"system metrics: final flush failed ({type(e).__name__})", flush=True)
