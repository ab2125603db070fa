"""Fast checks with no training: data validation, built-in assets, DeepSpeed config, checkpoint picking."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import REPO, build_plan, run_recipe

from ftlaunch.contract.plan import read_plan
from ftlaunch.recipes import assets, checkpoints, data
from ftlaunch.recipes.data import DataError
from ftlaunch.recipes.deepspeed_config import deepspeed_config


def test_tiny_model_facts_match_the_planner_config():
    conf = yaml.safe_load((REPO / "ftlaunch" / "conf" / "model" / "tiny.yaml").read_text())
    for key, value in assets.TINY_LLAMA.items():
        assert conf[key] == value, key
    a = assets.TINY_LLAMA
    kv_dim = a["num_key_value_heads"] * a["hidden_size"] // a["num_attention_heads"]
    for size in (a["hidden_size"], a["intermediate_size"], kv_dim, a["vocab_size"]):
        assert size % 32 == 0  # every linear layer's output: bitsandbytes 4-bit eval on CPU needs it


def test_committed_samples_are_what_the_generator_makes(tmp_path):
    paths = assets.write_arith(tmp_path)
    for fmt, (name, n) in assets.ARITH_FILES.items():
        committed = assets.SAMPLE_DIR / name
        assert committed.read_bytes() == paths[fmt].read_bytes(), f"regenerate {committed}"
        assert data.validate_file(committed, fmt) == n


def test_preference_rows_pair_right_and_wrong_answers():
    for row in assets.arith_rows("preference", 50):
        assert row["chosen"] != row["rejected"]
        q = row["prompt"].removeprefix("What is ").removesuffix("?")
        assert str(eval(q)) == row["chosen"]  # the task is arithmetic: chosen is the true answer


def test_builtin_paths_resolve_by_format():
    assert data.resolve("builtin:arith", "messages").endswith("arith_messages.jsonl")
    assert data.resolve("builtin:arith-pref", "preference").endswith("arith_pref.jsonl")
    with pytest.raises(DataError, match="holds preference rows"):
        data.resolve("builtin:arith-pref", "alpaca")
    with pytest.raises(DataError, match="unknown builtin"):
        data.resolve("builtin:nope", "alpaca")
    assert data.resolve("tatsu-lab/alpaca", "alpaca") == "tatsu-lab/alpaca"


@pytest.mark.parametrize(
    "fmt, lines, where, what",
    [
        (
            "preference",
            ['{"prompt":"p","chosen":"c","rejected":"r"}', '{"prompt":"p","chosen":"c"}'],
            "line 2",
            "'rejected'",
        ),
        (
            "alpaca",
            ['{"instruction":"i","output":"o"}', "", '{"instruction":"i","output":3}'],
            "line 3",
            "'output' must be a string",
        ),
        ("alpaca", ['{"instruction":"i","output":"o"', "{}"], "line 1", "not valid JSON"),
        ("messages", ['{"messages":[{"role":"user","content":"hi"}]}'], "line 1", "no assistant turn"),
        ("messages", ['{"messages":[{"role":"bot","content":"hi"}]}'], "line 1", "role 'bot'"),
        ("text", ['["a"]'], "line 1", "JSON object"),
        ("text", ['{"txt":"a"}'], "line 1", "no 'text' field"),
    ],
)
def test_validate_names_file_line_and_problem(tmp_path, fmt, lines, where, what):
    f = tmp_path / "x.jsonl"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        data.validate_file(f, fmt)
    msg = str(e.value)
    assert msg.startswith(f"{f} {where}: ") and what in msg and "\n" not in msg


def test_json_array_files_and_empty_files(tmp_path):
    good = tmp_path / "a.json"
    good.write_text(json.dumps([{"text": "a"}, {"text": "b"}]))
    assert data.validate_file(good, "text") == 2
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps([{"text": "a"}, {"tex": "b"}]))
    with pytest.raises(DataError, match="item 2"):
        data.validate_file(bad, "text")
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        data.validate_file(empty, "text")


def test_rows_take_trl_layout():
    row = {"instruction": "Add.", "input": "1+2", "output": "3"}
    out = data.to_trl(row, "alpaca", "sft")
    assert out["completion"] == "3" and "### Input:\n1+2" in out["prompt"]
    pref = {"prompt": "p", "chosen": "c", "rejected": "r"}
    assert data.to_trl(pref, "preference", "dpo") == pref
    assert data.to_trl(pref, "preference", "sft") == {"prompt": "p", "completion": "c"}
    with pytest.raises(DataError, match="needs preference data"):
        data.check_objective("alpaca", "dpo")


def test_malformed_data_exits_2_with_one_line_before_touching_the_run_dir(tmp_path, recipe_env):
    bad = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "p", "chosen": "c", "rejected": "r"}] * 16 + [{"prompt": "p", "chosen": "c"}]
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan_path = build_plan(tmp_path / "run", objective="dpo", data_path=str(bad))
    keep = tmp_path / "run" / "metrics.jsonl"
    keep.write_text("earlier run\n")
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    proc = run_recipe(plan_path, recipe_env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"{bad} line 17: preference row has no 'rejected' field" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    assert keep.read_text() == "earlier run\n"


def test_bad_plan_exits_2(tmp_path, recipe_env):
    plan_path = build_plan(tmp_path / "run", objective="dpo", method="full", dpo_reference="adapter")
    proc = run_recipe(plan_path, recipe_env)
    assert proc.returncode == 2 and "needs method lora or qlora" in proc.stderr


def test_deepspeed_config_from_plan(tmp_path):
    plan = read_plan(build_plan(tmp_path, method="full", zero_stage=3, micro_batch=2, grad_accum=8))
    assert deepspeed_config(replace(plan, resources=replace(plan.resources, zero_stage=0))) is None
    cfg = deepspeed_config(plan)
    assert cfg["zero_optimization"]["stage"] == 3
    assert cfg["train_micro_batch_size_per_gpu"] == 2 and cfg["gradient_accumulation_steps"] == 8
    assert cfg["bf16"] == {"enabled": "auto"} and cfg["train_batch_size"] == "auto"
    assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert "offload_optimizer" not in cfg["zero_optimization"] and "optimizer" not in cfg

    off = replace(plan, resources=replace(plan.resources, offload_optimizer=True, offload_params=True))
    cfg = deepspeed_config(off)
    assert cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert cfg["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert cfg["optimizer"]["params"]["lr"] == "auto"

    z2 = replace(plan, resources=replace(plan.resources, zero_stage=2, offload_params=True))
    with pytest.raises(ValueError, match="needs ZeRO-3"):
        deepspeed_config(z2)


def test_resume_picks_newest_complete_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (4, 8, 12):
        d = root / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "trainer_state.json").write_text("{}")
        if step != 12:  # 12 was being written when the job died
            checkpoints.mark_complete(d, step)
    (root / "checkpoint-10").mkdir()  # no trainer state, no marker
    assert checkpoints.pick_resume(root, "auto") == root / "checkpoint-8"
    assert checkpoints.pick_resume(root, "never") is None
    assert {p.name for p in checkpoints.incomplete(root)} == {"checkpoint-10", "checkpoint-12"}
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        checkpoints.pick_resume(root, str(root / "checkpoint-12"))
    assert checkpoints.pick_resume(tmp_path / "none", "auto") is None
    assert isinstance(checkpoints.latest_complete(root), Path)


def test_assets_cli_output_loads_through_from_pretrained_and_load_dataset(tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert assets.main(["--out", str(tmp_path)]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-llama")
    for key, value in assets.TINY_LLAMA.items():
        assert getattr(model.config, key) == value, key
    tok = AutoTokenizer.from_pretrained(tmp_path / "tiny-llama")
    assert len(tok) <= 512 and tok.pad_token == "<pad>" and tok.eos_token == "</s>"
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "What is 1+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|user|>\nWhat is 1+2?</s>\n<|assistant|>\n"
    assert tok.decode(tok("What is 12+7? 19")["input_ids"]) == "What is 12+7? 19"
    for name, n in assets.ARITH_FILES.values():
        assert len(load_dataset("json", data_files=str(tmp_path / "data" / name), split="train")) == n


def test_tied_preference_pairs_refused_above_a_small_share(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(40)]
    f = tmp_path / "p.jsonl"
    rows[5]["rejected"] = "a"  # 1 of 40 (2.5%): tolerated as noise
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert data.validate_file(f, "preference") == 40
    rows[9]["rejected"] = rows[30]["rejected"] = "a"  # 3 of 40 (7.5%): refused, first one named
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"line 6: chosen equals rejected.*3 of 40"):
        data.validate_file(f, "preference")
    with pytest.raises(DataError, match=r"row 6: chosen equals rejected"):
        data.validate_rows(rows, "hub/set", "preference")


def test_local_paths_resolve_the_same_on_both_sides(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "d").mkdir()
    assert data.resolve("~/x.jsonl", "text") == str(tmp_path / "x.jsonl")
    assert data.is_local("~/x.jsonl")
    assert data.resolve(str(tmp_path / "d"), "text") == str(tmp_path / "d")
    assert not data.is_local(str(tmp_path / "d"))  # a folder goes to load_dataset, rows checked there


def test_moe_full_finetuning_without_deepspeed_loops_over_experts_on_gpu(tmp_path):
    """fp32 MoE weights under autocast cannot use grouped_mm's bf16-only CUDA kernel: the recipe asks for the
    per-expert loop there. on_gpu=True is a stand-in (no GPU here); the loop itself is checked for real on CPU:
    a tiny MoE loaded with it computes the same loss as with transformers' default."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftlaunch.recipes.train import experts_implementation
    from tests.test_modelconfig import build_tiny

    def plan_of(method, zero, experts=4):
        p = read_plan(build_plan(tmp_path / f"{method}{zero}", method=method, zero_stage=zero))
        return replace(p, model=replace(p.model, arch={**p.model.arch, "num_experts": experts}))

    assert experts_implementation(plan_of("full", 0), on_gpu=True) == "eager"
    for plan, gpu in [(plan_of("full", 2), True), (plan_of("lora", 0), True), (plan_of("full", 0), False),
                      (plan_of("full", 0, experts=0), True)]:  # fmt: skip
        assert experts_implementation(plan, on_gpu=gpu) is None
    d = build_tiny("qwen3_moe", tmp_path / "moe")
    ids = torch.randint(0, 500, (2, 16))
    losses = []
    for impl in (None, "eager"):
        torch.manual_seed(0)
        kw = {"experts_implementation": impl} if impl else {}
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **kw)
        assert model.config._experts_implementation == (impl or "grouped_mm")
        losses.append(model(input_ids=ids, labels=ids).loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
