"""Property tests: whatever the job, a returned plan fits memory (with margin) and the budget."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast.memory import GiB
from ftlaunch.planning.planner import FIT_MARGIN, choose
from tests.conftest import load, make_job

MODELS = ["tiny", "qwen2.5-0.5b", "phi-3-mini", "llama-2-7b", "mistral-7b", "gemma-2-9b", "llama-2-13b",
          "llama-3-70b", "qwen2.5-72b", "qwen3-8b", "gemma-3-12b", "mixtral-8x7b", "qwen3-30b-a3b",
          "qwen1.5-moe-a2.7b", "olmoe-1b-7b"]  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(MODELS),
    data=st.sampled_from(["alpaca", "ultrachat", "ultrafeedback", "sample"]),
    method=st.sampled_from(["auto", "lora", "qlora", "full", "dpo"]),
    cluster=st.sampled_from(["cloud", "slurm-a100"]),
    budget=st.one_of(st.none(), st.floats(min_value=0.01, max_value=20_000)),
    shift=st.sampled_from(["small", "large"]),
    optimize=st.sampled_from(["cost", "time"]),
    seq=st.sampled_from([None, 256, 1024, 4096]),
)
def test_plan_fits_memory_and_budget(model, data, method, cluster, budget, shift, optimize, seq):
    kw = dict(model=model, data=data, method=method, cluster=cluster, budget=budget, seq_len=seq,
              goal={"domain_shift": shift, "optimize": optimize})  # fmt: skip
    if seq and seq > load("model", model)["max_position_embeddings"]:
        with pytest.raises(ConfigError, match="context"):
            make_job(**kw)
        return
    job = make_job(**kw)
    r = choose(job)
    if r.chosen is not None:
        c = r.chosen
        assert c.memory.total <= (1 - FIT_MARGIN) * c.gpu.memory_gib * GiB
        assert budget is None or c.cost.usd <= budget
        assert c.gpu.name in job.cluster.gpus
        assert c.setup.micro_batch * c.grad_accum * c.setup.n_gpus >= job.global_batch
        assert c.cost.usd > 0 and c.tokens_per_s_per_gpu > 0
    else:
        assert r.reason
        if r.cheapest_feasible is not None:
            assert budget is not None and r.cheapest_feasible.cost.usd > budget


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["auto", "lora", "qlora", "full"]),
    cluster=st.sampled_from(["cloud", "local"]),
    n_gpus=st.sampled_from([None, 1, 2, 8]),
    zero=st.sampled_from([None, 0, 1, 2, 3]),
    offload=st.sampled_from([None, "none", "optimizer", "all"]),
    micro_batch=st.sampled_from([None, 1, 4, 64]),
)
def test_pins_give_a_plan_that_honours_them_or_one_line(method, cluster, n_gpus, zero, offload, micro_batch):
    """Any pin combination either plans (and the plan keeps every pin) or raises one ConfigError line."""
    kw = dict(model="tiny" if cluster == "local" else "qwen2.5-0.5b", data="alpaca", method=method,
              cluster=cluster, n_gpus=n_gpus, zero=zero, offload=offload, micro_batch=micro_batch)  # fmt: skip
    try:
        r = choose(make_job(**kw))
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert r.reason
    if r.chosen is None:
        return
    s = r.chosen.setup
    assert n_gpus is None or s.n_gpus == n_gpus
    assert zero is None or s.zero == zero
    assert micro_batch is None or s.micro_batch == micro_batch
    want = {None: None, "none": (False, False), "optimizer": (True, False), "all": (True, True)}[offload]
    assert want is None or (s.offload_optimizer, s.offload_params) == want
    assert method == "auto" or s.method == method
