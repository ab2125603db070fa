"""Shared helpers: build a Job from the shipped configs without going through Hydra."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftlaunch.config import catalog
from ftlaunch.config.build import job_from_config
from ftlaunch.forecast.specs import Job

REPO = Path(__file__).resolve().parent.parent


def load(group: str, name: str) -> dict:
    return catalog.load(group, name)


def make_job(
    model="llama-3-8b", data="alpaca", method="auto", cluster="cloud", gpu="auto", budget=None, **top
) -> Job:
    cfg = {
        "model": load("model", model) if isinstance(model, str) else model,
        "data": load("data", data) if isinstance(data, str) else data,
        "method": load("method", method) if isinstance(method, str) else method,
        "cluster": load("cluster", cluster) if isinstance(cluster, str) else cluster,
        "gpu": load("gpu", gpu),
        "budget": budget,
        "epochs": 1,
        "global_batch": 32,
        "goal": {"domain_shift": "small", "optimize": "cost"},
    }
    goal = top.pop("goal", None)
    if goal:
        cfg["goal"].update(goal)
    cfg.update(top)
    return job_from_config(cfg)


def run_launch(
    *args: str, cwd: Path, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    exe = Path(sys.executable).parent / "launch"
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


SECRET_ENV = "hf_ENVSECRET0123456789"
SECRET_CFG = "cfg-secret-value-987"


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory):
    """The README's main job, once per session: launch on the defaults (tiny model, sample data, local
    executor, MLflow in ./mlflow.db), with a secret in the environment and one in the config."""
    d = tmp_path_factory.mktemp("quickstart")
    r = run_launch(
        "+budget=5", f"+auth.api_key={SECRET_CFG}", cwd=d, env={"HF_TOKEN": SECRET_ENV}, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (d / "launch.stdout").write_text(r.stdout)  # what the person saw (tests/test_visible.py)
    (d / "launch.stderr").write_text(r.stderr)
    (plan,) = d.glob("runs/*/plan.json")
    return d, plan.parent


# The local Slurm the Slurm tests share (ftlaunch/cluster/local-slurm.sh): nodes n1 (gpu:a100:2) and n2 (gpu:h100:2),
# fake GPUs, on this host; c1 without GPUs; partitions debug, short (MaxTime 20 min), quick (2 min), cpu; slurmdbd for sacct.
SLURM_ENV = {
    "SLURM_LOCAL_NODES": "2",
    "SLURM_LOCAL_GPUS": "2",
    "SLURM_LOCAL_CPUS": "4",
    "SLURM_LOCAL_DBD": "1",
    "SLURM_LOCAL_GRES_TYPES": "a100 h100",
}


@pytest.fixture(scope="session")
def slurm_cluster():
    """Starts (installing if needed) the local Slurm; in CI a missing Slurm is a failure, never a skip."""
    r = subprocess.run(["bash", str(REPO / "ftlaunch" / "cluster" / "local-slurm.sh"), "up"], env={**os.environ, **SLURM_ENV},
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True, timeout=30
    ).stdout
    states = dict(line.split() for line in out.splitlines())
    assert set(states) == {"n1", "n2", "c1"} and all(
        s in ("idle", "mixed", "allocated") for s in states.values()
    ), out
    return states


def wait_job(job_id: str, states: tuple[str, ...], timeout: float) -> str:
    """Poll Slurm until the job reaches one of `states`; fail the test naming its last state."""
    from ftlaunch.cluster import slurm

    deadline = time.time() + timeout
    st = ""
    while time.time() < deadline:
        st = slurm.job_state(job_id)
        if st in states:
            return st
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {st} after {timeout} s")


def submitted(d: Path) -> tuple[Path, str]:
    """(run folder, Slurm job id) of the one launch made in `d`."""
    (plan,) = d.glob("runs/*/plan.json")
    return plan.parent, (plan.parent / "job_id").read_text().strip()
