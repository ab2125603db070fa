"""The planner's forecast for one fixed plan (no search): used by benchmarks/gpu_validation.py to print
predicted peak memory and tokens/s beside measured ones."""

from __future__ import annotations

from launcher.errors import ConfigError
from launcher.memory import GiB, Setup, peak_memory
from launcher.params import count_params
from launcher.plan import Plan
from launcher.specs import ClusterSpec, gpu_catalog, gpu_spec, model_spec
from launcher.throughput import step_time, tokens_per_s_per_gpu


def predict(plan: Plan) -> dict[str, float]:
    t, r = plan.training, plan.resources
    arch = {k: v for k, v in plan.model.arch.items() if v is not None}
    m = model_spec({"name": plan.model.name, "path": plan.model.path, **arch})
    p = count_params(m, t.lora_r, t.lora_targets)
    catalog = gpu_catalog()
    if r.gpu not in catalog:  # a forecast for some other device would be silently wrong
        raise ConfigError(
            f"plan.resources.gpu={r.gpu!r} is not in the GPU catalog: known are {', '.join(sorted(catalog))}"
        )
    gpu = gpu_spec(catalog[r.gpu])
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
