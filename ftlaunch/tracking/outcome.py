"""A job's outcome (ftlaunch/cluster/outcome.py) on its MLflow run: tags, the terminal status, and for an
out-of-memory job the point the memory forecast failed at."""

from __future__ import annotations

import json
from pathlib import Path

from ftlaunch.cluster.outcome import Outcome
from ftlaunch.contract import metricnames as names


def push(run_dir: Path, o: Outcome) -> bool:
    """Tags + terminal status on the run's MLflow run; False (kept in outcome.json) when MLflow is away."""
    s_file = run_dir / "mlflow.json"
    if not s_file.exists():
        return False
    s = json.loads(s_file.read_text())
    if not s.get("run_id"):
        return False
    try:
        from ftlaunch.tracking.mlflow_run import client

        c = client(s["uri"])
        c.set_tag(s["run_id"], "ftlaunch.outcome", o.kind)
        c.set_tag(s["run_id"], "ftlaunch.slurm_state", o.state)
        if o.kind != "COMPLETED":
            c.set_tag(s["run_id"], "ftlaunch.status", o.kind.lower())
            c.set_tag(s["run_id"], "ftlaunch.failure", f"{o.kind}: {o.detail}")
            if o.kind == "OOM":
                c.log_metric(s["run_id"], names.OOM_PREDICTED, o.predicted_peak_gib or 0.0)
                if o.ran_out_at_gib:
                    c.log_metric(s["run_id"], names.OOM_RAN_OUT, o.ran_out_at_gib)
            c.set_terminated(s["run_id"], status="KILLED" if o.kind == "CANCELLED" else "FAILED")
        return True
    except Exception:  # noqa: BLE001 - tracking is best effort; outcome.json holds it
        return False
