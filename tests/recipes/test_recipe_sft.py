"""SFT LoRA end to end on the tiny model: loss, actuals, checkpoints, kill + resume, graceful stop, budget, export."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PY, REPO, build_plan, ok, read_json, read_metrics, run_recipe

from ftlaunch.recipes import checkpoints

STEPS, EVERY = 16, 4


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, recipe_env) -> Path:
    """One uninterrupted reference run: SFT LoRA on the arithmetic data."""
    run_dir = tmp_path_factory.mktemp("lora") / "run"
    ok(run_recipe(build_plan(run_dir, max_steps=STEPS, checkpoint_every=EVERY), recipe_env))
    return run_dir


def test_completes_and_writes_actuals(lora_run):
    a = read_json(lora_run / "actuals.json")
    assert a["stop_reason"] == "completed" and a["steps"] == STEPS
    assert a["device"] == "cpu" and a["peak_mem_source"].startswith("cpu peak RSS")
    assert 0.05 < a["peak_mem_gb"] < 8
    assert a["tokens_seen"] > STEPS * 4 * 8 and a["tokens_per_s"] > 0 and a["tokens_per_s_per_gpu"] > 0
    assert a["wall_s"] > a["train_s"] > 0 and a["gpu_hours"] == pytest.approx(a["wall_s"] / 3600)
    assert a["cost_usd"] == 0.0 and a["segments"] == 1 and a["resumed_from"] is None
    # precision policy on CPU: fp32 base and fp32 adapters, no autocast
    assert a["precision"]["bf16_autocast"] is False
    assert set(a["precision"]["stored_params"]["trainable"]) == {"float32"}
    assert set(a["precision"]["stored_params"]["frozen"]) == {"float32"}

    rows = read_metrics(lora_run)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all({"loss", "lr", "tokens_per_s"} <= r.keys() for r in rows)
    assert rows[-1]["loss"] == a["final_loss"] and rows[0]["loss"] == a["loss_first"]

    assert (lora_run / "final" / "adapter_model.safetensors").is_file()
    assert (lora_run / "final" / "tokenizer.json").is_file()
    done = [p.name for p in checkpoints.checkpoints(lora_run / "checkpoints") if checkpoints.is_complete(p)]
    assert done == ["checkpoint-8", "checkpoint-12", "checkpoint-16"]  # every 4 steps, newest 3 kept
    assert read_json(lora_run / "spend.json")["segments"] == 1


def test_loss_drops_on_arithmetic(lora_run):
    losses = [r["loss"] for r in read_metrics(lora_run)]
    assert losses[-1] < losses[0]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5


def test_kill_then_resume_reproduces_the_uninterrupted_run(tmp_path, recipe_env, lora_run):
    run_dir = tmp_path / "run"
    plan_path = build_plan(run_dir, max_steps=STEPS, checkpoint_every=EVERY)
    killed = run_recipe(plan_path, recipe_env, extra_env={"FTLAUNCH_FAULT_KILL_AT_STEP": "10"})
    assert killed.returncode == -signal.SIGKILL
    assert checkpoints.latest_complete(run_dir / "checkpoints").name == "checkpoint-8"
    # a checkpoint the dead job was half-way through writing must not be picked
    half = run_dir / "checkpoints" / "checkpoint-12"
    half.mkdir()
    (half / "trainer_state.json").write_text('{"global_step": 12')

    ok(run_recipe(plan_path, recipe_env))  # --resume auto is the default
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "completed" and a["steps"] == STEPS
    assert a["resumed_from"].endswith("checkpoint-8") and a["segments"] == 2
    state = json.loads((run_dir / "checkpoints" / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS

    # Steps 9..16 after the resume match the uninterrupted run: same lr (scheduler state), same loss
    # (weights, Adam moments, RNG and data order restored), token count carried over.
    ref = {r["step"]: r for r in read_metrics(lora_run)}
    resumed = [r for r in read_metrics(run_dir) if r["segment"] == 2]
    assert [r["step"] for r in resumed] == list(range(9, STEPS + 1))
    for r in resumed:
        assert r["lr"] == pytest.approx(ref[r["step"]]["lr"], rel=1e-9)
        assert r["loss"] == pytest.approx(ref[r["step"]]["loss"], rel=1e-4)
        assert r["tokens_seen"] == ref[r["step"]]["tokens_seen"]


def test_stop_file_checkpoints_and_resume_finishes(tmp_path, recipe_env):
    run_dir = tmp_path / "run"
    plan_path = build_plan(run_dir, max_steps=6, checkpoint_every=100)
    (run_dir / "STOP").touch()
    ok(run_recipe(plan_path, recipe_env))
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "preempted" and a["steps"] == 1
    assert read_json(run_dir / "preempted") == {"reason": "STOP file", "step": 1}
    assert checkpoints.is_complete(run_dir / "checkpoints" / "checkpoint-1")
    assert not (run_dir / "STOP").exists() and not (run_dir / "final").exists()

    ok(run_recipe(plan_path, recipe_env))
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "completed" and a["steps"] == 6 and a["resumed_from"].endswith("checkpoint-1")
    assert not (run_dir / "preempted").exists() and (run_dir / "final").is_dir()


def _catches(pid: int, sig: int) -> bool:
    """True once the process has installed a handler for `sig` (Linux /proc SigCgt mask)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (sig - 1) & 1)


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM], ids=["SIGUSR1", "SIGTERM"])
def test_signal_stops_at_the_next_step_with_a_checkpoint(tmp_path, recipe_env, sig):
    run_dir = tmp_path / "run"
    plan_path = build_plan(run_dir, max_steps=50, checkpoint_every=100)
    proc = subprocess.Popen(
        [PY, "-m", "ftlaunch.recipes.train", "--plan", str(plan_path)],
        env=recipe_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not _catches(proc.pid, sig) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)  # arrives while the model loads: the stop happens at the first step boundary
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "preempted" and 1 <= a["steps"] < 50
    assert read_json(run_dir / "preempted")["reason"] == f"signal {sig.name}"
    assert checkpoints.latest_complete(run_dir / "checkpoints").name == f"checkpoint-{a['steps']}"


def test_budget_guard_stops_and_a_requeue_does_not_double_count(tmp_path, recipe_env):
    run_dir = tmp_path / "run"
    # $3600 per GPU-hour = $1/s; model loading alone spends more than the $2 cap (the env limit is below the plan's)
    plan_path = build_plan(
        run_dir, max_steps=50, checkpoint_every=100, budget_usd=1000.0, price_per_gpu_hour=3600.0
    )
    limit = {"FTLAUNCH_MAX_COST_USD": "2"}
    ok(run_recipe(plan_path, recipe_env, extra_env=limit))
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "budget" and a["steps"] == 1
    reason = read_json(run_dir / "budget_exhausted")
    assert reason["limit_usd"] == 2.0 and reason["step"] == 1
    assert checkpoints.is_complete(run_dir / "checkpoints" / "checkpoint-1")
    first = read_json(run_dir / "spend.json")
    assert first["cost_usd"] == pytest.approx(first["wall_s"], rel=1e-6) and first["cost_usd"] > 2

    t = time.monotonic()
    ok(run_recipe(plan_path, recipe_env, extra_env=limit))  # the requeued job: budget already spent
    elapsed = time.monotonic() - t
    second = read_json(run_dir / "spend.json")
    assert second["segments"] == 2
    assert 0 < second["wall_s"] - first["wall_s"] <= elapsed  # only the new segment's time was added
    assert second["cost_usd"] == pytest.approx(second["wall_s"], rel=1e-6)
    assert read_json(run_dir / "actuals.json")["steps"] == 1  # nothing trained
    assert checkpoints.latest_complete(run_dir / "checkpoints").name == "checkpoint-1"


def test_export_merges_the_adapter(tmp_path, recipe_env, lora_run):
    out = tmp_path / "merged"
    proc = subprocess.run(
        [PY, "-m", "ftlaunch.recipes.export", "--run-dir", str(lora_run), "--out", str(out)],
        env=recipe_env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    ok(proc)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlaunch.recipes.assets import resolve_model

    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("### Instruction:\nWhat is 3+4?\n\n### Response:\n", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(resolve_model("builtin:tiny-llama"))
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, lora_run / "final")(ids).logits
        merged_logits = merged(ids).logits
    assert torch.allclose(merged_logits, adapted, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-3)


def test_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path, recipe_env):
    """SIGKILL after checkpoint-8's files are written but before it is marked complete (a write cut short):
    checkpoint-4 stays usable, the restart resumes from it and finishes the planned steps."""
    run_dir = tmp_path / "run"
    plan_path = build_plan(run_dir, max_steps=12, checkpoint_every=4)
    killed = run_recipe(plan_path, recipe_env, extra_env={"FTLAUNCH_FAULT_KILL_IN_SAVE": "8"})
    assert killed.returncode == -signal.SIGKILL
    assert (run_dir / "checkpoints" / "checkpoint-8").is_dir()  # written, but never marked complete
    assert checkpoints.latest_complete(run_dir / "checkpoints").name == "checkpoint-4"
    ok(run_recipe(plan_path, recipe_env))
    a = read_json(run_dir / "actuals.json")
    assert a["steps"] == 12 and a["resumed_from"].endswith("checkpoint-4")
