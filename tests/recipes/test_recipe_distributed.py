"""Multi-process runs on CPU: torchrun x2 (gloo DDP) and DeepSpeed ZeRO-2 / ZeRO-3 (DS_ACCELERATOR=cpu)."""

from __future__ import annotations

import socket
import subprocess

import pytest
from conftest import PY, REPO, build_plan, ok, read_json, read_metrics, run_recipe

from ftlaunch.recipes import checkpoints


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(plan_path, env, nproc=2):
    cmd = [PY, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--master-port={_free_port()}"]
    cmd += ["-m", "ftlaunch.recipes.train", "--plan", str(plan_path)]
    env = {**env, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_torchrun_two_processes_stop_together_and_resume(tmp_path, recipe_env):
    run_dir = tmp_path / "run"
    plan_path = build_plan(run_dir, n_gpus=2, max_steps=6, checkpoint_every=100)
    (run_dir / "STOP").touch()  # both ranks must agree to stop at the same step, or the job would hang
    ok(torchrun(plan_path, recipe_env))
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "preempted" and a["steps"] == 1 and a["world_size"] == 2
    ckpt = run_dir / "checkpoints" / "checkpoint-1"
    assert checkpoints.is_complete(ckpt) and (ckpt / "rng_state_1.pth").is_file()  # rank 1 saved too

    ok(torchrun(plan_path, recipe_env))
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "completed" and a["steps"] == 6 and a["world_size"] == 2
    assert a["resumed_from"].endswith("checkpoint-1")
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3, 4, 5, 6]
    # each step sees micro_batch rows on each of the 2 ranks
    assert a["tokens_seen"] > 6 * 2 * 4 * 8


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_single_process(tmp_path, recipe_env, stage):
    """ZeRO-2 full run; ZeRO-3 full run killed after step 3 and resumed from DeepSpeed's sharded checkpoint."""
    run_dir = tmp_path / "run"
    plan_path = build_plan(run_dir, method="full", zero_stage=stage, max_steps=4, checkpoint_every=2)
    if stage == 3:
        killed = run_recipe(
            plan_path, recipe_env, extra_env={"FTLAUNCH_FAULT_KILL_AT_STEP": "3"}, timeout=600
        )
        assert killed.returncode != 0
    ok(
        run_recipe(plan_path, recipe_env, timeout=600)
    )  # the first ZeRO run JIT-builds DeepSpeed's shm op (~45 s)
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "completed" and a["steps"] == 4
    ckpt = checkpoints.latest_complete(run_dir / "checkpoints")
    assert ckpt.name == "checkpoint-4" and (ckpt / "global_step4").is_dir()  # DeepSpeed's own engine state
    assert (run_dir / "final" / "model.safetensors").is_file()
    assert list(a["precision"]["stored_params"]["trainable"]) == ["float32"]  # no bf16 on CPU
    if stage == 3:
        assert a["resumed_from"].endswith("checkpoint-2")
        assert [r["step"] for r in read_metrics(run_dir) if r["segment"] == 2] == [3, 4]


@pytest.mark.slow
def test_expert_lora_under_zero3(tmp_path, recipe_env):
    """LoRA on a MoE's fused expert tensors (PEFT's ParamWrapper) with DeepSpeed ZeRO-3 partitioning them:
    trains to the end and the adapter is exactly the one the planner counted, experts included."""
    import json

    from ftlaunch.forecast.params import count_params
    from tests.test_modelconfig import build_tiny, spec_of

    model_dir = build_tiny("qwen3_moe", tmp_path / "My-moe")
    run_dir = tmp_path / "run"
    plan_path = build_plan(run_dir, method="lora", zero_stage=3, max_steps=4, checkpoint_every=2)
    plan = json.loads(plan_path.read_text())
    plan["model"].update(name="my-moe", path=str(model_dir))
    plan_path.write_text(json.dumps(plan))
    ok(run_recipe(plan_path, recipe_env, timeout=600))
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "completed" and a["steps"] == 4
    assert a["final_loss"] < a["loss_first"]
    lora = count_params(spec_of(model_dir), lora_r=plan["training"]["lora_r"]).lora
    assert a["precision"]["stored_params"]["trainable"] == {"float32": lora}
