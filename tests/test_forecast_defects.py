"""Forecast defects found in review (docs/accuracy.md), one test each; every one failed before its fix."""

import math
from dataclasses import replace

import pytest

from ftlaunch.config.build import catalog_gpu, cluster_spec, gpu_spec, model_spec
from ftlaunch.forecast.memory import peak_memory
from ftlaunch.forecast.params import count_params
from ftlaunch.forecast.predict import predict
from ftlaunch.forecast.setup import NF4_BYTES, Setup
from ftlaunch.forecast.throughput import (
    DDP_BUCKET_BYTES,
    DEFAULT_INTER_NODE_GB_S,
    INTER_NODE_LATENCY_S,
    INTRA_NODE_LATENCY_S,
    Efficiency,
    step_time,
)
from ftlaunch.planning.assemble import to_plan
from ftlaunch.planning.planner import choose
from tests.conftest import load, make_job

M = model_spec(load("model", "llama-2-7b"))
P = count_params(M)
H100 = gpu_spec(load("gpu", "h100-sxm"))
CLOUD = cluster_spec(load("cluster", "cloud"))
NO_OVERLAP = Efficiency(mfu=0.5, bandwidth=1.0, comm_overlap=0.0)


def setup(**kw):
    base = dict(method="full", objective="sft", n_gpus=16, zero=3, offload_optimizer=False, offload_params=False,
                micro_batch=4, seq_len=2048, grad_ckpt=False)  # fmt: skip
    return Setup(**{**base, **kw})


def test_unset_inter_node_bandwidth_is_a_slow_fabric_not_nvlink():
    unset = replace(CLOUD, inter_node_gb_s=0.0)
    slow = replace(CLOUD, inter_node_gb_s=DEFAULT_INTER_NODE_GB_S)
    a = step_time(M, P, setup(), H100, unset, 8, NO_OVERLAP)
    b = step_time(M, P, setup(), H100, slow, 8, NO_OVERLAP)
    one_node = step_time(M, P, setup(n_gpus=8), H100, unset, 8, NO_OVERLAP)
    assert a.comm == pytest.approx(b.comm)
    assert a.comm > 10 * one_node.comm  # NVLink (900 GB/s) inside the node, 12.5 GB/s across


def test_forecast_costs_multi_node_on_the_plans_fabric():
    job = make_job(model="llama-2-13b", method="full", cluster="slurm-a100", gpu="a100-80gb", n_gpus=16,
                   zero=3, seq_len=2048)  # fmt: skip
    plan = to_plan(job, choose(job), "runs/x")
    assert plan.resources.nodes == 2 and plan.cluster.inter_node_gb_s == 25
    assert predict(plan, catalog_gpu("a100-80gb"))["tokens_per_s_per_gpu"] == pytest.approx(
        plan.forecast.tokens_per_s_per_gpu, rel=1e-3
    )


def test_comm_overlap_is_a_share_of_communication():
    half = Efficiency(mfu=0.5, bandwidth=1.0, comm_overlap=0.5)
    raw = step_time(M, P, setup(n_gpus=8), H100, CLOUD, 8, NO_OVERLAP).comm
    st = step_time(M, P, setup(n_gpus=8), H100, CLOUD, 8, half)
    assert st.compute > 0.5 * raw  # compute is long enough to hide the overlapped half
    assert st.comm == pytest.approx(0.5 * raw)
    # ... but never more than the compute time
    full = Efficiency(mfu=0.5, bandwidth=1.0, comm_overlap=1.0)
    slow = replace(CLOUD, inter_node_gb_s=DEFAULT_INTER_NODE_GB_S)
    raw = step_time(M, P, setup(), H100, slow, 8, NO_OVERLAP).comm
    st1 = step_time(M, P, setup(), H100, slow, 8, full)
    # every GPU kernel of the micro-step (matmuls and the bandwidth-bound ones between them) hides collectives
    assert st1.comm == pytest.approx(max(0.0, raw - st1.compute - st1.elementwise))


def test_throughput_uses_the_setups_quant_bits():
    s4 = setup(method="qlora", n_gpus=8)
    s45 = replace(s4, quant_bits=4.5)
    a = step_time(M, P, s4, H100, CLOUD, 8, NO_OVERLAP)
    b = step_time(M, P, s45, H100, CLOUD, 8, NO_OVERLAP)
    assert b.dequant - a.dequant == pytest.approx(
        2 * (4.5 - NF4_BYTES * 8) / 8 * P.linear / 3350e9
    )  # fwd + bwd
    assert b.comm > a.comm  # ZeRO-3 gathers the bigger quantized weights


def test_lora_gradients_travel_in_the_adapter_dtype():
    # DDP all-reduce once per step (grad_accum 1): 2 (n-1)/n x gradient bytes over NVLink (NCCL bus bandwidth).
    lora = step_time(M, P, setup(method="lora", n_gpus=8, zero=0), H100, CLOUD, 1, NO_OVERLAP)
    qlora = step_time(M, P, setup(method="qlora", n_gpus=8, zero=0), H100, CLOUD, 1, NO_OVERLAP)
    ring = 2 * 7 / 8

    def latency(grad_bytes):  # 25 MB DDP buckets, each all-reduce = 2 x 7 ring steps
        return 2 * math.ceil(grad_bytes / DDP_BUCKET_BYTES) * 7 * INTRA_NODE_LATENCY_S

    bw = H100.intra_node_gb_s * 1e9
    assert lora.comm == pytest.approx(
        ring * 4.0 * P.lora / bw + latency(4.0 * P.lora)
    )  # fp32 adapters (PEFT)
    assert qlora.comm == pytest.approx(ring * 2.0 * P.lora / bw + latency(2.0 * P.lora))  # bf16 (TRL's QLoRA)


def test_zero3_shards_lora_adapters():
    one = peak_memory(M, P, setup(method="lora", n_gpus=1, zero=0))
    z3 = peak_memory(M, P, setup(method="lora", n_gpus=8, zero=3))
    base = 2.0 * P.total
    assert one.weights - base == pytest.approx(4.0 * P.lora)
    assert z3.weights - base / 8 == pytest.approx(4.0 * P.lora / 8)


def test_collectives_pay_latency_per_call():
    # ZeRO-3 on 8 GPUs: per layer, one all-gather per pass + one reduce-scatter, each 7 ring steps x 5 us.
    s = setup(method="lora", n_gpus=8, micro_batch=1, seq_len=16)
    st = step_time(M, P, s, H100, CLOUD, 1, NO_OVERLAP)
    ring = 7 / 8
    beta = (2 * ring * 2.0 * P.total + ring * 4.0 * P.lora) / (H100.intra_node_gb_s * 1e9)
    assert st.comm == pytest.approx(beta + (2 + 1) * 32 * 7 * INTRA_NODE_LATENCY_S)
    two_nodes = step_time(M, P, setup(method="lora", micro_batch=1, seq_len=16), H100, CLOUD, 1, NO_OVERLAP)
    beta16 = (2 * 15 / 16 * 2.0 * P.total + 15 / 16 * 4.0 * P.lora) / (CLOUD.inter_node_gb_s * 1e9)
    assert two_nodes.comm == pytest.approx(beta16 + 3 * 32 * 15 * INTER_NODE_LATENCY_S)
