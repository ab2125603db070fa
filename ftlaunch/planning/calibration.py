"""Correction factors from past runs, applied to the next plan (`launch ... calibrate=true`).

`launch-report --calibrate` fits them (ftlaunch/tracking/calibration.py) and writes
<output_root>/calibration.json; planning reads only that file (no MLflow import on the planning path) and the
planner multiplies its tokens/s, peak memory and start-up overhead by them, per GPU type and method.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast.specs import Job

FILE = "calibration.json"
FACTORS = ("tokens_per_s", "peak_mem", "overhead")


def key(gpu: str, method: str) -> str:
    return f"{gpu}/{method}"


def load(path: Path) -> dict[str, dict[str, float]]:
    if not path.exists():
        raise ConfigError(
            f"calibrate=true but {path} does not exist: run `launch-report --calibrate` after a job"
        )
    try:
        data = json.loads(path.read_text())
        return dict(data["factors"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is not a calibration file: delete it and run `launch-report --calibrate`"
        ) from None


def apply_calibration(job: Job, cfg: dict[str, Any]) -> Job:
    path = Path(cfg.get("output_root") or "runs") / FILE
    return replace(job, calibration=load(path))
