"""The decision flow, pins, budgets and the alternatives' reasons."""

import pytest

from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast.memory import GiB
from ftlaunch.planning.planner import FIT_MARGIN, choose
from tests.conftest import load, make_job


def test_default_small_shift_picks_lora_within_budget():
    r = choose(make_job(budget=500))
    assert r.chosen.method == "lora" and r.chosen.cost.usd <= 500
    assert "LoRA" in r.reason


def test_tight_budget_falls_to_qlora():
    # 70B LoRA needs several GPUs; a budget between QLoRA's and LoRA's cheapest forces QLoRA
    job = make_job(model="llama-2-70b", budget=None)
    r = choose(job)
    lora = min(c.cost.usd for c in _fit(job) if c.method == "lora")
    qlora = min(c.cost.usd for c in _fit(job) if c.method == "qlora")
    assert qlora < lora
    r = choose(make_job(model="llama-2-70b", budget=(qlora + lora) / 2))
    assert r.chosen.method == "qlora" and "budget tight" in r.reason


def test_low_vram_falls_to_qlora():
    cluster = {**load("cluster", "cloud"), "gpus": ["l4"], "max_nodes": 1, "gpus_per_node": 1}
    r = choose(make_job(model="llama-2-13b", data="ultrachat", cluster=cluster, seq_len=2048))
    assert r.chosen.method == "qlora" and "low VRAM" in r.reason


def test_large_domain_shift_picks_full_with_zero3_when_sharded():
    r = choose(make_job(model="qwen2.5-7b", budget=5000, goal={"domain_shift": "large"}))
    c = r.chosen
    assert c.method == "full" and (c.setup.zero == 3 or c.setup.n_gpus == 1)


def test_large_shift_but_full_over_budget_says_so():
    job = make_job(model="qwen2.5-7b", goal={"domain_shift": "large"})
    full = min(c.cost.usd for c in _fit(job) if c.method == "full")
    r = choose(make_job(model="qwen2.5-7b", budget=full * 0.9, goal={"domain_shift": "large"}))
    assert r.chosen.method == "lora" and "full fine-tuning costs" in r.reason


def test_preference_data_adds_dpo():
    r = choose(make_job(model="mistral-7b", data="ultrafeedback", budget=1000))
    assert r.objective == "dpo" and r.chosen.setup.objective == "dpo" and "DPO" in r.reason


def test_pins_are_respected():
    r = choose(make_job(method="full", gpu="a100-80gb", n_gpus=8, zero=3, micro_batch=2, grad_ckpt=True,
                        offload="optimizer", cluster="slurm-a100"))  # fmt: skip
    s = r.chosen.setup
    assert (r.chosen.gpu.name, s.method, s.n_gpus, s.zero, s.micro_batch, s.grad_ckpt) == (
        "a100-80gb", "full", 8, 3, 2, True)  # fmt: skip
    assert s.offload_optimizer and not s.offload_params


def test_infeasible_budget_names_cheapest_plan():
    r = choose(make_job(model="llama-3-70b", budget=0.5))
    assert r.chosen is None and r.cheapest_feasible is not None
    assert "cheapest feasible plan" in r.reason and r.cheapest_feasible.label() in r.reason


def test_nothing_fits_says_smallest_need():
    r = choose(make_job(model="llama-3-70b", method="full", gpu="l4", n_gpus=1))
    assert r.chosen is None and "nothing fits in memory" in r.reason


def test_alternatives_carry_reasons():
    r = choose(make_job(model="llama-3-8b", budget=2))
    reasons = " | ".join(x.reason for x in r.rejected)
    assert "over budget by $" in reasons or "more" in reasons
    r = choose(make_job(model="llama-3-70b", method="full", budget=100000))
    assert any("GiB >" in x.reason for x in r.rejected)


def test_chosen_fits_with_margin_and_optimize_time_is_faster():
    cheap = choose(make_job(model="llama-3-8b", budget=200))
    fast = choose(make_job(model="llama-3-8b", budget=200, goal={"optimize": "time"}))
    assert fast.chosen.cost.hours <= cheap.chosen.cost.hours
    assert fast.chosen.cost.usd <= 200
    for r in (cheap, fast):
        assert r.chosen.memory.total <= (1 - FIT_MARGIN) * r.chosen.gpu.memory_gib * GiB


@pytest.mark.parametrize(
    "override,match",
    [
        ({"budget": -5}, "positive"),
        ({"budget": "lots"}, "not a number"),
        ({"seq_len": 10**6}, "context"),
        ({"zero": 5}, "0..3"),
        ({"offload": "disk"}, "offload"),
        ({"n_gpus": 10**4}, "exceeds"),
        ({"global_batch": 0}, "global_batch"),
        ({"goal": {"domain_shift": "huge"}}, "domain_shift"),
    ],
)
def test_bad_values_raise_one_line(override, match):
    with pytest.raises(ConfigError, match=match) as e:
        make_job(**override)
    assert "\n" not in str(e.value)


def _fit(job):
    from ftlaunch.planning.planner import evaluate

    return [c for c in evaluate(job)[0] if c.fits]


def test_pins_that_rule_out_the_flows_methods_still_plan():
    # ZeRO-2 only makes sense for full fine-tuning: auto must take full, not report "no plan fits the budget"
    r = choose(make_job(zero=2, n_gpus=2, budget=5000))
    assert r.chosen is not None and r.chosen.method == "full" and r.chosen.setup.zero == 2
    assert "pins leave only full fine-tuning" in r.reason


@pytest.mark.parametrize(
    "pins,match",
    [
        ({"method": "qlora", "zero": 2}, "qlora's optimizer state is tiny"),
        ({"method": "lora", "offload": "optimizer"}, "optimizer offload change nothing"),
        ({"n_gpus": 1, "zero": 3, "offload": "none", "method": "full"}, "sharding over one GPU"),
        ({"cluster": "local", "zero": 3}, "CPU device runs without DeepSpeed"),
        ({"micro_batch": 64}, "exceeds global_batch=32"),
    ],
)
def test_meaningless_pins_raise_one_line(pins, match):
    with pytest.raises(ConfigError, match=match) as e:
        choose(make_job(model="tiny" if pins.get("cluster") == "local" else "llama-3-8b", **pins))
    assert "\n" not in str(e.value)


def test_full_fine_tuning_when_no_adapter_fits_and_no_budget():
    # Without checkpointing at seq 8192, with rank-1024 adapters (2.7 B trainable parameters on top of the
    # adapters' per-input activation copies), no LoRA/QLoRA layout fits an A100 while sharded full FT does;
    # this used to crash formatting a budget of None.
    method = load("method", "auto") | {"lora_r": 1024}
    job = make_job(model="llama-3-8b", data="ultrachat", method=method, cluster="slurm-a100", grad_ckpt=False,
                   seq_len=8192)  # fmt: skip
    r = choose(job)
    assert r.chosen is not None and r.chosen.method == "full"
    assert "neither LoRA nor QLoRA" in r.reason
