"""The pruned search (ftlaunch/planning/prune.py: cost bound + checkpointing dominance) returns what the exhaustive
search returns, and its bound really is a lower bound."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftlaunch.contract.errors import ConfigError
from ftlaunch.planning import prune
from ftlaunch.planning.planner import choose, evaluate
from tests.conftest import load, make_job

MODELS = ["tiny", "qwen2.5-0.5b", "phi-3-mini", "llama-3-8b", "mistral-7b", "gemma-2-9b", "llama-2-13b",
          "llama-3-70b", "qwen2.5-72b"]  # fmt: skip


def _summary(r):
    """Everything a user reads off a result, except the alternatives of dropped layouts."""
    c, cheap = r.chosen, r.cheapest_feasible
    return (
        c and (c.label(), round(c.cost.usd, 6), round(c.cost.hours, 6), c.grad_accum, c.checkpoint_every),
        r.reason,
        cheap and (cheap.label(), round(cheap.cost.usd, 6)),
        r.learning_rate,
    )


def _bests(cands):
    """The best plan of each method on each GPU type (what the alternatives table shows per kind)."""
    out = {}
    for c in cands:
        if c.fits:
            k = (c.method, c.gpu.name)
            if k not in out or (c.cost.usd, c.cost.hours) < out[k]:
                out[k] = (c.cost.usd, c.cost.hours)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(MODELS),
    data=st.sampled_from(["alpaca", "ultrachat", "ultrafeedback", "sample"]),
    method=st.sampled_from(["auto", "lora", "qlora", "full", "dpo"]),
    cluster=st.sampled_from(["cloud", "slurm-a100", "local"]),
    budget=st.one_of(st.none(), st.floats(min_value=0.01, max_value=20_000)),
    shift=st.sampled_from(["small", "large"]),
    optimize=st.sampled_from(["cost", "time"]),
    seq=st.sampled_from([None, 256, 1024, 4096]),
    ckpt=st.sampled_from([None, True, False]),
)
def test_pruned_search_chooses_what_the_exhaustive_one_does(
    model, data, method, cluster, budget, shift, optimize, seq, ckpt
):
    kw = dict(model=model, data=data, method=method, cluster=cluster, budget=budget, seq_len=seq,
              grad_ckpt=ckpt, goal={"domain_shift": shift, "optimize": optimize})  # fmt: skip
    if seq and seq > load("model", model)["max_position_embeddings"]:
        with pytest.raises(ConfigError):
            make_job(**kw)
        return
    job = make_job(**kw)
    full, pruned = choose(job, prune=False), choose(job, prune=True)
    assert _summary(pruned) == _summary(full)
    assert pruned.n_evaluated <= full.n_evaluated
    assert _bests(evaluate(job, prune=True)[0]) == _bests(evaluate(job, prune=False)[0])


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(method="full", goal={"domain_shift": "large"}),
        dict(model="llama-3-70b", cluster="slurm-a100", budget=2000),
        dict(data="ultrafeedback", method="dpo"),
        dict(goal={"optimize": "time"}, budget=500),
    ],
)
def test_bound_is_below_every_plan_it_stands_for(kw):
    job = make_job(**kw)
    cands, p = evaluate(job, prune=False)
    fitting = [c for c in cands if c.fits]
    assert fitting
    from ftlaunch.forecast import workload

    wl = workload.of(job, fitting[0].setup.objective)
    pad0, useful0 = wl.speed(1)
    for c in fitting:
        s = c.setup
        work = c.cost.tokens_total / useful0 * prune.flops_per_token(job.model, p, s, pad0)
        hours, usd = prune.bound(p, c.gpu, s.n_gpus, work, 1.0, 1.0)
        assert hours <= c.cost.hours * (1 + 1e-9)
        assert usd <= c.cost.usd * (1 + 1e-9)


def test_pruning_skips_work_on_the_heaviest_catalog_case():
    job = make_job(model="llama-3-8b", data="alpaca", cluster="cloud", budget=500)
    assert len(evaluate(job, prune=True)[0]) < 0.6 * len(evaluate(job, prune=False)[0])


@pytest.mark.parametrize("optimize", ["cost", "time"])
@pytest.mark.parametrize("fmt, packing", [("text", False), ("text", True), ("preference", False)])
def test_pruning_with_counted_lengths_keeps_the_choice(optimize, fmt, packing):
    """Counted lengths make the padded length, and so the bound, grow with the micro-batch."""
    import random

    from ftlaunch.forecast.tokenstats import TokenCounts

    rng = random.Random(1)
    n = 4000
    seqs = [tuple(int(rng.lognormvariate(5, 1)) + 2 for _ in range(n))]
    if fmt == "preference":
        seqs.append(tuple(int(rng.lognormvariate(5, 1)) + 2 for _ in range(n)))
    prompt = tuple(rng.randint(0, 40) if fmt == "preference" else 0 for _ in range(n))
    counts = TokenCounts(prompt=prompt, seqs=tuple(seqs), tokenizer="x")
    data = {"name": "own", "path": "x", "format": fmt, "n_samples": n, "tokens_per_sample": counts.mean_tokens(),
            "max_tokens": counts.max_sequence(), "packing": packing, "token_counts": counts}  # fmt: skip
    for model, budget in (("llama-3-8b", 50), ("qwen2.5-0.5b", None), ("llama-3-70b", 400)):
        job = make_job(model=model, data=data, cluster="cloud", budget=budget, seq_len=2048,
                       goal={"optimize": optimize})  # fmt: skip
        full, pruned = choose(job, prune=False), choose(job, prune=True)
        assert _summary(pruned) == _summary(full)
        assert _bests(evaluate(job, prune=True)[0]) == _bests(evaluate(job, prune=False)[0])
