"""Helpers for the recipe tests: a plan.json for the tiny model, and running the recipe as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftlaunch.contract.plan import (
    ClusterRef,
    DataRef,
    Forecast,
    ModelRef,
    Plan,
    Resources,
    Training,
    write_plan,
)
from ftlaunch.recipes.assets import TINY_LLAMA

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
# the shape ftlaunch/recipes/assets.py builds (and ftlaunch/conf/model/tiny.yaml states)
TINY_ARCH = dict(TINY_LLAMA)
DATA = {  # format -> (path, rows)
    "alpaca": ("builtin:arith", 512),
    "messages": ("builtin:arith-messages", 512),
    "preference": ("builtin:arith-pref", 256),
    "text": ("builtin:arith-text", 512),
}


def build_plan(
    run_dir: Path,
    *,
    method: str = "lora",
    objective: str = "sft",
    fmt: str | None = None,
    data_path: str | None = None,
    packing: bool = False,
    split: str = "train",
    zero_stage: int = 0,
    n_gpus: int = 1,
    budget_usd: float | None = None,
    price_per_gpu_hour: float = 0.0,
    **training: object,
) -> Path:
    """Write run_dir/plan.json for the tiny model and return its path."""
    fmt = fmt or ("preference" if objective == "dpo" else "alpaca")
    path, rows = DATA[fmt]
    t = dict(
        method=method,
        objective=objective,
        seq_len=64,
        epochs=1.0,
        micro_batch=4,
        grad_accum=1,
        global_batch=4 * n_gpus,
        max_steps=8,
        grad_ckpt=False,
        learning_rate=1e-3 if method == "full" else 3e-3,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        lora_targets="all-linear",
        dpo_beta=0.1,
        dpo_reference="adapter" if method != "full" else "model",
        checkpoint_every=4,
        seed=0,
    )
    t.update(training)
    plan = Plan(
        job_name=f"test-{method}-{objective}",
        model=ModelRef(name="tiny", path="builtin:tiny-llama", n_params=524_928, arch=TINY_ARCH),
        data=DataRef(
            name="sample",
            path=data_path or path,
            format=fmt,
            split=split,
            n_samples=rows,
            tokens_per_sample=24,
            packing=packing,
        ),
        training=Training(**t),
        resources=Resources(
            gpu="cpu",
            n_gpus=n_gpus,
            nodes=1,
            gpus_per_node=n_gpus,
            zero_stage=zero_stage,
            offload_optimizer=False,
            offload_params=False,
            price_per_gpu_hour=price_per_gpu_hour,
        ),
        forecast=Forecast(
            peak_mem_gib=0.1,
            mem_breakdown_gib={},
            tokens_per_s_per_gpu=1000.0,
            tokens_total=1.0,
            hours=0.01,
            gpu_hours=0.01,
            cost_usd=0.0,
        ),
        budget_usd=budget_usd,
        cluster=ClusterRef(name="local", executor="local"),
        run_dir=str(run_dir),
        created="2026-11-24T00:00:00Z",
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_plan(plan, run_dir / "plan.json")
    return run_dir / "plan.json"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: multi-process recipe runs (torchrun, DeepSpeed); still run in CI"
    )


@pytest.fixture(scope="session")
def recipe_env(tmp_path_factory) -> dict[str, str]:
    """Environment for recipe subprocesses: a private asset cache (the first run builds the tiny model)."""
    cache = tmp_path_factory.mktemp("ftlaunch-cache")
    env = dict(os.environ)
    env.update(
        FTLAUNCH_CACHE=str(cache),
        HF_DATASETS_CACHE=str(cache / "hf-datasets"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.pop("FTLAUNCH_MAX_COST_USD", None)
    return env


def run_recipe(plan_path: Path, env: dict, *args: str, extra_env: dict | None = None, timeout: float = 300):
    cmd = [PY, "-m", "ftlaunch.recipes.train", "--plan", str(plan_path), *args]
    return subprocess.run(
        cmd, env={**env, **(extra_env or {})}, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    )
    return proc


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def plan_for(tmp_path):
    def make(name: str = "run", **kw) -> Path:
        return build_plan(tmp_path / name, **kw)

    return make
