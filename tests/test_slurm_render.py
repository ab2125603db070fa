"""The batch script rendered from a plan: golden file, limits, and hostile values."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from ftlaunch.cluster import batch
from ftlaunch.contract.errors import ConfigError
from ftlaunch.planning.assemble import to_plan
from ftlaunch.planning.planner import choose
from tests.conftest import load, make_job

GOLDEN = Path(__file__).parent / "golden" / "job.sbatch"


def plan_for(run_dir="/scratch/runs/llama-3-70b-alpaca-20261124-120000-abcdef", **cluster):
    """A plan from the shipped slurm-a100 config with `cluster` keys overridden, through the real config path
    (cluster_spec -> Job -> to_plan), so a key the plan does not carry cannot be tested by injection."""
    cfg = {**load("cluster", "slurm-a100"), **cluster}
    job = make_job(model="llama-3-70b", cluster=cfg, method="lora", budget=5000, n_gpus=16, zero=3)
    p = to_plan(job, choose(job), run_dir)
    # fixed forecast: the golden file tests rendering, not the planner's numbers
    fc = replace(p.forecast, hours=2.0)
    return replace(p, created="2026-11-24T12:00:00+00:00", forecast=fc)


def test_golden_script():
    text = batch.render(plan_for(), {"FTLAUNCH_RUN_DIR": "/scratch/runs/x"}, python="/opt/venv/bin/python")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_script_is_valid_bash_and_requests_what_the_plan_says():
    p = plan_for()
    text = batch.render(p, python="/opt/venv/bin/python")
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    assert f"#SBATCH --nodes={p.resources.nodes}" in text and p.resources.nodes == 2
    assert "#SBATCH --gres=gpu:8" in text and "--nproc-per-node=8" in text
    assert "#SBATCH --signal=B:USR1@" in text and "#SBATCH --requeue" in text and "--open-mode=append" in text
    assert "#SBATCH --partition=gpu" in text
    assert '--rdzv-id="$SLURM_JOB_ID"' in text and "scontrol show hostnames" in text
    assert "--gpus-per-node=8" in batch.render(plan_for(gpu_flag="gpus-per-node"))


@pytest.mark.parametrize(
    "hours,limit", [(0.0, "0-00:10:00"), (0.01, "0-00:11:00"), (1.0, "0-01:28:00"), (30, "1-15:10:00")]
)
def test_time_limit_has_margin(hours, limit):
    assert batch.time_limit(hours) == limit


@pytest.mark.parametrize("key", ["partition", "account", "qos"])
@pytest.mark.parametrize("evil", ["gpu; rm -rf /", "$(reboot)", "a`id`", "x\n#SBATCH --uid=0", "a b"])
def test_hostile_cluster_names_are_refused(key, evil):
    with pytest.raises(ConfigError, match=key):
        batch.render(plan_for(**{key: evil}))


def test_hostile_paths_and_env_are_quoted(tmp_path):
    evil_dir = str(tmp_path / "runs $(touch PWNED) `id`; echo")
    p = replace(plan_for(run_dir=evil_dir), job_name="x'; touch PWNED2 #")
    text = batch.render(p, {"HF_TOKEN_FILE": "a'b $(touch PWNED3)"}, python="/usr/bin/python3")
    assert "#SBATCH --job-name=x-touch-PWNED2" in text
    # Execute only the variable assignments: nothing may run, values must round-trip exactly.
    assigns = [ln for ln in text.splitlines() if ln.startswith(("RUN_DIR=", "PLAN=", "export "))]
    out = subprocess.run(["bash", "-c", "\n".join(assigns) + '\nprintf "%s\\n" "$RUN_DIR" "$HF_TOKEN_FILE"'],
                         cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert out.stdout.splitlines() == [evil_dir, "a'b $(touch PWNED3)"]
    assert not list(tmp_path.glob("PWNED*"))
    with pytest.raises(ConfigError, match="environment variable"):
        batch.render(p, {"BAD;NAME": "1"})
