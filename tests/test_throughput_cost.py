"""FLOPs per token, the step-time model and the budget calculator (docs/decision-flow.md), by hand."""

import pytest

from ftlaunch.config.build import cluster_spec, gpu_spec, model_spec
from ftlaunch.forecast import cost
from ftlaunch.forecast.params import count_params
from ftlaunch.forecast.setup import Setup
from ftlaunch.forecast.throughput import (
    LAYER_PASS_OVERHEAD_S,
    Efficiency,
    step_time,
    tokens_per_s_per_gpu,
    train_flops_per_token,
)
from tests.conftest import load

M = model_spec(load("model", "llama-2-7b"))
P = count_params(M)
H100 = gpu_spec(load("gpu", "h100-sxm"))
CLOUD = cluster_spec(load("cluster", "cloud"))
EFF = Efficiency(mfu=0.5, bandwidth=1.0, comm_overlap=0.0)


def setup(**kw):
    base = dict(method="full", objective="sft", n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
                micro_batch=4, seq_len=2048, grad_ckpt=False)  # fmt: skip
    return Setup(**{**base, **kw})


def test_full_is_6n_plus_causal_attention():
    n_mm = P.linear + P.lm_head  # embedding lookup is not a matmul
    attn_fwd = 2 * 32 * 2048 * 4096
    assert train_flops_per_token(M, P, setup()) == pytest.approx(6 * n_mm + 3 * attn_fwd)


def test_lora_skips_weight_gradients_ckpt_and_dpo_add_forwards():
    n_mm = P.linear + P.lm_head
    attn_fwd = 2 * 32 * 2048 * 4096
    lora = train_flops_per_token(M, P, setup(method="lora"))
    assert lora == pytest.approx(4 * n_mm + 3 * attn_fwd + 6 * P.lora)
    ckpt = train_flops_per_token(M, P, setup(method="lora", grad_ckpt=True))
    assert ckpt - lora == pytest.approx(2 * P.linear + attn_fwd)
    dpo = train_flops_per_token(M, P, setup(method="lora", objective="dpo"))
    assert dpo - lora == pytest.approx(2 * n_mm + attn_fwd)


def test_compute_bound_step_time_by_hand():
    s = setup()
    st = step_time(M, P, s, H100, CLOUD, grad_accum=8, eff=EFF)
    tokens = 4 * 2048
    launches = 2 * 32 * LAYER_PASS_OVERHEAD_S  # forward + backward over 32 layers
    assert st.compute == pytest.approx(train_flops_per_token(M, P, s) * tokens / (989e12 * 0.5) + launches)
    assert st.comm == 0 and st.dequant == 0 and st.offload == 0
    assert tokens_per_s_per_gpu(st, s) == pytest.approx(tokens / st.total)


def test_small_batch_is_bandwidth_bound():
    s = setup(method="lora", micro_batch=1, seq_len=16)
    st = step_time(M, P, s, H100, CLOUD, grad_accum=1, eff=EFF)
    # 2 passes over bf16 weights, plus launch overhead per layer-pass
    assert st.compute == pytest.approx(2 * 2 * P.total / 3350e9 + 2 * 32 * LAYER_PASS_OVERHEAD_S)


def test_qlora_pays_dequantization_zero3_pays_communication():
    q = step_time(M, P, setup(method="qlora"), H100, CLOUD, 8, EFF)
    assert q.dequant > 0
    z2 = step_time(M, P, setup(n_gpus=8, zero=2), H100, CLOUD, 8, EFF)
    z3 = step_time(M, P, setup(n_gpus=8, zero=3), H100, CLOUD, 8, EFF)
    assert z3.comm > z2.comm > 0
    multi = step_time(M, P, setup(n_gpus=16, zero=3), H100, CLOUD, 8, EFF)
    assert multi.comm > z3.comm  # crosses the slower inter-node fabric


def test_budget_calculator_example():
    # docs/decision-flow.md's example: 1000 tok/sample * 10k samples * 3 epochs at 2000 tok/s/GPU on 4 GPUs, $2/h
    c = cost.estimate(cost.workload_tokens(1000, 10_000, 3), 2000, 4, 2.0, steps=100, model_bytes=0,
                      checkpoint_bytes=0, checkpoint_every=100)  # fmt: skip
    assert c.tokens_total == 30_000_000
    assert c.train_hours == pytest.approx(30e6 / 8000 / 3600)
    overhead_h = cost.STARTUP_S / 3600
    assert c.usd == pytest.approx((c.train_hours + overhead_h) * 4 * 2.0)
    assert cost.optimizer_steps(10_000, 3, 32) == 938


def test_cpu_step_is_dispatch_plus_flops_and_starts_up_in_seconds():
    from ftlaunch.forecast.throughput import CPU_EFFICIENCY, CPU_LAYER_PASS_FLOPS, CPU_MICRO_STEP_FLOPS

    tiny = model_spec(load("model", "tiny"))
    pt = count_params(tiny)
    cpu = gpu_spec(load("gpu", "cpu"))
    s = setup(method="lora", micro_batch=1, seq_len=32)
    st = step_time(tiny, pt, s, cpu, cluster_spec(load("cluster", "local")), grad_accum=32)
    peak = cpu.bf16_tflops * 1e12
    flops = train_flops_per_token(tiny, pt, s) * 32 / (peak * CPU_EFFICIENCY.mfu)
    dispatch = (2 * 2 * CPU_LAYER_PASS_FLOPS + CPU_MICRO_STEP_FLOPS) / peak  # 2 layers x forward + backward
    assert st.compute == pytest.approx(
        max(flops, 2 * 2 * pt.total / (cpu.mem_bandwidth_gb_s * 1e9 * 0.5)) + dispatch
    )
    assert cost.startup_s("cpu") == cost.CPU_STARTUP_S < 30 and cost.startup_s("h100-sxm") == cost.STARTUP_S
