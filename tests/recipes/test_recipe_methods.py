"""Every method, objective and data format trains on CPU through the real recipe (tiny model, 4 steps)."""

from __future__ import annotations

import math

import pytest
from conftest import build_plan, ok, read_json, read_metrics, run_recipe

CASES = {
    "sft-qlora": dict(method="qlora"),
    "sft-full": dict(method="full"),
    "sft-messages": dict(fmt="messages"),
    "sft-text-packing": dict(fmt="text", packing=True),
    "dpo-lora-adapter-ref": dict(objective="dpo", dpo_reference="adapter"),
    "dpo-lora-precomputed-ref": dict(objective="dpo", dpo_reference="precomputed", split="train[:64]"),
    "dpo-full-model-ref": dict(method="full", objective="dpo", dpo_reference="model"),
}


@pytest.mark.parametrize("case", CASES)
def test_trains(tmp_path, recipe_env, case):
    kw = CASES[case]
    run_dir = tmp_path / "run"
    ok(run_recipe(build_plan(run_dir, max_steps=4, checkpoint_every=4, **kw), recipe_env))
    a = read_json(run_dir / "actuals.json")
    assert a["stop_reason"] == "completed" and a["steps"] == 4
    assert math.isfinite(a["final_loss"]) and a["tokens_seen"] > 0
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3, 4]
    final = run_dir / "final"
    params = a["precision"]["stored_params"]
    if kw.get("method") == "full":
        assert (final / "model.safetensors").is_file() and not params["frozen"]
        assert set(params["trainable"]) == {"float32"}  # full on CPU: fp32 weights, no autocast
    else:
        assert (final / "adapter_model.safetensors").is_file()
    if kw.get("method") == "qlora":  # nf4 weights stored as bf16 (quant_storage); TRL keeps the adapters bf16
        assert set(params["frozen"]) == {"bfloat16"} and set(params["trainable"]) == {"bfloat16"}
    if kw.get("objective") == "dpo":
        assert a["loss_first"] == pytest.approx(math.log(2), abs=0.02)  # policy == reference at step 1
        rows = read_metrics(run_dir)
        assert all("rewards/margins" in r for r in rows)
    if kw.get("packing"):
        # a text row is ~15 tokens; packed (best-fit) rows fill most of seq_len=64
        assert a["tokens_seen"] > 4 * 4 * 40
