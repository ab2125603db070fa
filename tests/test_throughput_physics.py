"""The throughput model's physics terms (docs/accuracy.md): per-GPU matmul efficiency from measured matmul rates,
bandwidth-bound kernels between the matmuls, collectives hidden behind compute."""

from dataclasses import replace

import pytest

from ftlaunch.config.build import cluster_spec, gpu_spec, model_spec
from ftlaunch.forecast.params import count_params
from ftlaunch.forecast.setup import Setup
from ftlaunch.forecast.throughput import (
    ELEMENTWISE_SCALE,
    LOSS_BYTES_PER_VOCAB,
    STACK_MATMUL_EFFICIENCY,
    UNMEASURED_MATMUL_FRACTION,
    efficiency_for,
    elementwise_bytes_per_token_layer,
    step_time,
    tokens_per_s_per_gpu,
)
from tests.conftest import load

M = model_spec(load("model", "llama-2-7b"))
P = count_params(M)
A100 = gpu_spec(load("gpu", "a100-80gb"))
H100 = gpu_spec(load("gpu", "h100-sxm"))
RTX4090 = gpu_spec(load("gpu", "rtx-4090"))
CLOUD = cluster_spec(load("cluster", "cloud"))


def setup(**kw):
    base = dict(method="full", objective="sft", n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
                micro_batch=4, seq_len=2048, grad_ckpt=False)  # fmt: skip
    return Setup(**{**base, **kw})


def test_mfu_is_measured_matmul_rate_times_one_shared_stack_efficiency():
    # A100 and H100 carry a measured max achievable matmul rate; both share the stack factor.
    assert efficiency_for(A100).mfu == pytest.approx(271.2 / 312 * STACK_MATMUL_EFFICIENCY)
    assert efficiency_for(H100).mfu == pytest.approx(794.5 / 989 * STACK_MATMUL_EFFICIENCY)
    # A GPU nobody measured (consumer card) gets the published table's median fraction, not a guess per card.
    assert RTX4090.matmul_tflops is None
    assert efficiency_for(RTX4090).mfu == pytest.approx(UNMEASURED_MATMUL_FRACTION * STACK_MATMUL_EFFICIENCY)
    # an explicit mfu (calibration) still wins
    assert efficiency_for(replace(RTX4090, mfu=0.3)).mfu == 0.3


def test_bandwidth_bound_kernels_cost_h100_a_larger_share_than_a100():
    # H100 has 3.2x the A100's matmul peak but 1.6x its bandwidth: the same kernels between the matmuls
    # take a larger share of its step, which is why published H100 runs show a lower MFU.
    s = setup()
    a, h = step_time(M, P, s, A100, CLOUD, 8), step_time(M, P, s, H100, CLOUD, 8)
    assert a.elementwise > 0 and h.elementwise > 0
    assert h.elementwise / h.total > 1.3 * a.elementwise / a.total
    assert h.elementwise == pytest.approx(a.elementwise * 2039 / 3350)  # same bytes, other bandwidth


def test_small_models_spend_a_larger_share_outside_the_matmuls():
    # Elementwise bytes grow with hidden size, matmul FLOPs with its square.
    small = model_spec(load("model", "qwen2.5-0.5b"))
    ps = count_params(small)
    s = setup()
    share_small = (
        step_time(small, ps, s, A100, CLOUD, 8).elementwise / step_time(small, ps, s, A100, CLOUD, 8).total
    )
    share_7b = step_time(M, P, s, A100, CLOUD, 8).elementwise / step_time(M, P, s, A100, CLOUD, 8).total
    assert share_small > 1.5 * share_7b


def test_elementwise_traffic_follows_the_block_type_and_recompute():
    gpt_style = replace(M, mlp="standard")  # fused LayerNorm, GELU, no RoPE
    assert elementwise_bytes_per_token_layer(gpt_style) < 0.5 * elementwise_bytes_per_token_layer(M)
    plain = step_time(M, P, setup(), A100, CLOUD, 8).elementwise
    ckpt = step_time(M, P, setup(grad_ckpt=True), A100, CLOUD, 8).elementwise
    loss = ELEMENTWISE_SCALE * LOSS_BYTES_PER_VOCAB * M.vocab_size * 4 * 2048 / (2039e9 * 0.7)
    # forward 1x + backward 2x, recompute adds one more forward of the layers (the loss is not recomputed)
    assert ckpt - loss == pytest.approx((plain - loss) * 4 / 3)


def test_zero3_gathers_hide_behind_compute_until_the_fabric_is_too_slow():
    s = setup(n_gpus=8, zero=3)
    one_node = step_time(M, P, s, H100, CLOUD, 8)
    assert one_node.comm == 0.0  # NVLink gathers prefetched during the previous layer's compute
    slow = replace(CLOUD, inter_node_gb_s=1.0)
    two_nodes = step_time(M, P, replace(s, n_gpus=16), H100, slow, 8)
    assert two_nodes.comm > 0.5 * (two_nodes.compute + two_nodes.elementwise)  # the fabric dominates
    assert tokens_per_s_per_gpu(two_nodes, s) < 0.5 * tokens_per_s_per_gpu(one_node, s)


def test_cpu_step_has_no_gpu_elementwise_term():
    tiny = model_spec(load("model", "tiny"))
    cpu = gpu_spec(load("gpu", "cpu"))
    st = step_time(tiny, count_params(tiny), setup(method="lora", micro_batch=1, seq_len=32), cpu,
                   cluster_spec(load("cluster", "local")), 32)  # fmt: skip
    assert st.elementwise == 0.0  # the CPU model is measured dispatch + FLOPs (benchmarks/cpu_peak.py)
