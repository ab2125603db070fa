"""The planner's forecast for one fixed plan (no search): used by benchmarks/gpu_validation.py to print
predicted peak memory and tokens/s beside measured ones."""

from __future__ import annotations

from ftlaunch.contract.plan import Plan
from ftlaunch.forecast.memory import GiB, peak_memory
from ftlaunch.forecast.params import count_params
from ftlaunch.forecast.setup import Setup
from ftlaunch.forecast.specs import ClusterSpec, GpuSpec, ModelSpec
from ftlaunch.forecast.throughput import step_time, tokens_per_s_per_gpu


def predict(plan: Plan, gpu: GpuSpec) -> dict[str, float]:
    """Peak memory and tokens/s of a written plan on `gpu` (the catalog entry the plan names:
    ftlaunch.config.build.catalog_gpu)."""
    t, r = plan.training, plan.resources
    m = ModelSpec.from_arch(plan.model.name, plan.model.path, plan.model.arch)
    p = count_params(m, t.lora_r, t.lora_targets)
    s = Setup.from_plan(plan)
    mem = peak_memory(m, p, s)
    cluster = ClusterSpec(name="forecast", executor="local", gpus=(gpu.name,), gpus_per_node=max(1, r.gpus_per_node),
                          max_nodes=max(1, r.nodes), inter_node_gb_s=plan.cluster.inter_node_gb_s)  # fmt: skip
    st = step_time(m, p, s, gpu, cluster, t.grad_accum)
    return {
        "peak_mem_gib": mem.total / GiB,
        "peak_mem_allocated_gib": mem.allocated / GiB,
        "tokens_per_s_per_gpu": tokens_per_s_per_gpu(st, s),
        "gpu": gpu.name,
    }
