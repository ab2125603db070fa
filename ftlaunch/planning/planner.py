"""Enumerate candidate configurations, forecast each, and choose one by the decision flow.

Decision flow (docs/decision-flow.md): budget tight or low VRAM -> QLoRA; large domain shift -> full
fine-tuning + ZeRO-3; otherwise LoRA; preference data (or method=dpo) adds a DPO stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import zip_longest

from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast import cost as costs
from ftlaunch.forecast import workload
from ftlaunch.forecast.compare import measured_memory
from ftlaunch.forecast.memory import GiB, MemoryBreakdown, peak_memory
from ftlaunch.forecast.params import ParamCounts, count_params
from ftlaunch.forecast.setup import Setup
from ftlaunch.forecast.specs import DEFAULT_LR, METHODS, GpuSpec, Job
from ftlaunch.forecast.throughput import StepTime, step_time, tokens_per_s_per_gpu
from ftlaunch.planning import prune as prune_

MICRO_BATCHES = (1, 2, 4, 8, 16, 32, 64)
METHOD_NAMES = {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning"}
CHECKPOINT_TARGET_S = 1800  # default cadence: one checkpoint per ~30 min, so preemption loses little
# A plan must leave this share of GPU memory free: the allowance for forecast error (median memory error
# in benchmarks/results/forecast_accuracy.json) and for memory spikes the model does not see.
FIT_MARGIN = 0.05


@dataclass(frozen=True)
class Candidate:
    gpu: GpuSpec
    setup: Setup
    grad_accum: int
    memory: MemoryBreakdown
    step: StepTime | None  # None when it does not fit: no point forecasting its speed
    tokens_per_s_per_gpu: float
    cost: costs.Cost | None
    checkpoint_every: int

    @property
    def method(self) -> str:
        return self.setup.method

    @property
    def peak_gib(self) -> float:
        return self.memory.total / GiB

    @property
    def fits(self) -> bool:
        return self.cost is not None

    @property
    def complexity(self) -> int:
        """Tie-breaker: among equal plans prefer fewer GPUs, no DeepSpeed, no offload, no recompute."""
        s = self.setup
        return s.n_gpus * 8 + s.zero * 2 + s.offload_optimizer + s.offload_params + s.grad_ckpt

    def label(self) -> str:
        s = self.setup
        obj = "DPO " if s.objective == "dpo" else ""
        off = {(False, False): "", (True, False): "+off(opt)", (True, True): "+off(all)"}[
            (s.offload_optimizer, s.offload_params)
        ]
        return f"{obj}{s.method} {s.n_gpus}x{self.gpu.name} ZeRO-{s.zero}{off} mb{s.micro_batch}{' ckpt' if s.grad_ckpt else ''}"


@dataclass(frozen=True)
class Rejected:
    candidate: Candidate
    reason: str


@dataclass(frozen=True)
class PlanResult:
    chosen: Candidate | None
    reason: str  # why chosen (or why nothing could be)
    rejected: list[Rejected]
    objective: str  # sft | dpo
    cheapest_feasible: Candidate | None  # for infeasible budgets
    n_evaluated: int
    params: ParamCounts
    learning_rate: float


def objective_of(job: Job) -> str:
    return "dpo" if job.method.name == "dpo" or job.data.format == "preference" else "sft"


def gpu_counts(job: Job) -> list[int]:
    c = job.cluster
    if job.pins.n_gpus is not None:
        return [job.pins.n_gpus]
    counts = {1}
    k = 2
    while k <= c.gpus_per_node:
        counts.add(k)
        k *= 2
    counts.add(c.gpus_per_node)
    for nodes in range(2, c.max_nodes + 1):
        counts.add(nodes * c.gpus_per_node)
    return sorted(counts)


def _methods(job: Job) -> tuple[str, ...]:
    m = job.method
    if m.name in METHODS:
        return (m.name,)
    if m.name == "dpo" and m.adapter != "auto":
        return (m.adapter,)
    return METHODS


def _layout_skip(method: str, n: int, cpu: bool, z: int, off_opt: bool, off_par: bool) -> str | None:
    """Why a (zero stage, offload) layout is not worth trying for this method and GPU count, or None."""
    if off_par and z != 3:
        return "offloading parameters needs ZeRO-3"
    if off_opt and z == 0:
        return "offload needs DeepSpeed (zero >= 1)"
    if cpu and (z > 0 or off_opt):
        return "the CPU device runs without DeepSpeed, so no ZeRO stage or offload (pick a GPU cluster)"
    if n == 1 and z > 0 and not off_opt:
        return "sharding over one GPU changes nothing (use zero=0, or offload, or more GPUs)"
    if method != "full" and (z in (1, 2) or (off_opt and not off_par)):
        return f"{method}'s optimizer state is tiny, so ZeRO-1/2 or optimizer offload change nothing"
    return None


_OFFLOAD = {None: None, "none": (False, False), "optimizer": (True, False), "all": (True, True)}


def _memory_layouts(job: Job, method: str, n: int, cpu: bool) -> list[tuple[int, bool, bool]]:
    """(zero stage, offload optimizer, offload params) worth trying and allowed by the pins."""
    return [lay for lay in _pinned_layouts(job) if _layout_skip(method, n, cpu, *lay) is None]


def _pinned_layouts(job: Job) -> list[tuple[int, bool, bool]]:
    p, want = job.pins, _OFFLOAD[job.pins.offload]
    return [
        (z, oo, op)
        for z in range(4)
        for oo, op in ((False, False), (True, False), (True, True))
        if (p.zero is None or z == p.zero) and (want is None or (oo, op) == want)
    ]


def check_pins(job: Job) -> None:
    """Pins that leave nothing to forecast end here with one line, instead of an empty search."""
    reasons: list[str] = []
    for method in _methods(job):
        for gpu in job.gpus:
            for n in gpu_counts(job):
                for lay in _pinned_layouts(job):
                    why = _layout_skip(method, n, gpu.name == "cpu", *lay)
                    if why is None:
                        return
                    reasons.append(why)
    p = job.pins
    pins = [
        f"{k}={v}"
        for k, v in (("zero", p.zero), ("offload", p.offload), ("n_gpus", p.n_gpus))
        if v is not None
    ]
    if job.method.name != "auto":
        pins.append(f"method={job.method.name}")
    why = max(set(reasons), key=reasons.count) if reasons else "no layout matches"
    raise ConfigError(f"{' '.join(pins)} cannot be planned: {why}; drop or change a pin")


def check_micro_batch(job: Job) -> None:
    mb, n = job.pins.micro_batch, min(gpu_counts(job))
    if mb is not None and mb > 1 and mb * n > job.global_batch:
        raise ConfigError(
            f"micro_batch={mb} x {n} GPU(s) exceeds global_batch={job.global_batch}: "
            f"lower micro_batch or raise global_batch"
        )


def _references(job: Job, method: str, objective: str) -> tuple[str, ...]:
    if objective != "dpo":
        return ("adapter",)
    ref = job.method.dpo_reference
    if ref != "auto":
        return (ref,)
    return ("adapter",) if method in ("lora", "qlora") else ("model", "precomputed")


def _shapes(job: Job, objective: str):
    """Every (method, gpu, n_gpus, layout, reference, checkpointing) worth forecasting; micro-batch is the
    inner loop of evaluate() because it can stop at the first size that does not fit."""
    ckpts = (job.pins.grad_ckpt,) if job.pins.grad_ckpt is not None else (False, True)
    for method in _methods(job):
        for gpu in job.gpus:
            for n in gpu_counts(job):
                for layout in _memory_layouts(job, method, n, gpu.name == "cpu"):
                    for ref in _references(job, method, objective):
                        for ckpt in ckpts:
                            yield method, gpu, n, layout, ref, ckpt


def evaluate(job: Job, prune: bool = True) -> tuple[list[Candidate], ParamCounts]:
    """Every candidate worth forecasting, in enumeration order. With `prune`, shapes are tried cheapest
    bound first and a shape that cannot beat a plan already found is skipped (ftlaunch/planning/prune.py); the
    choice is the same as without (tests/test_prune.py)."""
    m, meth = job.model, job.method
    p = count_params(m, meth.lora_r, meth.lora_targets)
    objective = objective_of(job)
    wl = workload.of(job, objective)  # rows and tokens the recipe really processes (padding, packing)
    tokens_total = costs.workload_tokens(wl.tokens_per_row, wl.rows, job.epochs)
    steps = costs.optimizer_steps(wl.rows, job.epochs, job.global_batch)
    mbs = (job.pins.micro_batch,) if job.pins.micro_batch else MICRO_BATCHES
    shapes = list(_shapes(job, objective))
    order: list[tuple[float, int]] = []
    bounds = {}
    fpt: dict[tuple, float] = {}

    def bound(shape, mb: int) -> tuple[float, float]:
        # Padding grows with the micro-batch, so this bound only grows with mb (ftlaunch/planning/prune.py).
        method, gpu, n, (z, off_opt, off_par), ref, ckpt = shape
        pad, useful = wl.speed(mb)
        if (method, ckpt, mb) not in fpt:
            s0 = _setup(job, objective, method, n, z, off_opt, off_par, mb, ref, ckpt, gpu)
            fpt[method, ckpt, mb] = prune_.flops_per_token(m, p, s0, pad)
        cal = job.calibration.get(f"{gpu.name}/{method}", {})
        work = tokens_total / useful * fpt[method, ckpt, mb]  # FLOPs over the tokens processed, padding too
        return prune_.bound(p, gpu, n, work, cal.get("tokens_per_s", 1.0), cal.get("overhead", 1.0))

    if prune:
        bounds = {i: bound(shape, mbs[0]) for i, shape in enumerate(shapes)}
        k = 0 if job.optimize == "time" else 1
        order = sorted((bounds[i][k], i) for i in bounds)
    else:
        order = [(0.0, i) for i in range(len(shapes))]
    best: dict[tuple, tuple[float, float]] = {}  # group -> (rounded hours, rounded usd) in budget
    found: list[tuple[int, list[Candidate]]] = []
    twin_fit: dict[tuple, int] = {}  # shape without checkpointing -> its largest fitting micro-batch
    for _, i in order:
        method, gpu, n, (z, off_opt, off_par), ref, ckpt = shapes[i]
        g = prune_.group(method, gpu, n, z, off_par)
        if prune and prune_.beaten(job, bounds[i], best.get(g)):
            continue
        twin = (method, gpu.name, n, z, off_opt, off_par, ref)
        # Checkpointing only adds work (recompute: more FLOPs, passes and traffic, so a slower micro-step
        # at the same memory layout); with it on, only micro-batches too big without it can win.
        skip = twin_fit.get(twin, 0) if prune and ckpt else 0
        inc = best.get(g)
        stop = (
            (lambda mb, sh=shapes[i], inc=inc: prune_.beaten(job, bound(sh, mb), inc))
            if prune and inc
            else None
        )
        cands = _evaluate_shape(job, m, p, wl, tokens_total, steps, mbs, objective, shapes[i], skip, stop)
        if not ckpt:
            twin_fit[twin] = max((c.setup.micro_batch for c in cands if c.fits), default=0)
        found.append((i, cands))
        for c in cands:
            if c.fits and (job.budget is None or c.cost.usd <= job.budget):
                h, u = best.get(g, (math.inf, math.inf))
                best[g] = (min(h, round(c.cost.hours, 2)), min(u, round(c.cost.usd, 2)))
    found.sort(key=lambda t: t[0])  # enumeration order: ties in choose() resolve as without pruning
    return [c for _, cands in found for c in cands], p


def _setup(job: Job, objective, method, n, z, off_opt, off_par, mb, ref, ckpt, gpu) -> Setup:
    meth = job.method
    return Setup(
        method=method, objective=objective, n_gpus=n, zero=z, offload_optimizer=off_opt,
        offload_params=off_par, micro_batch=mb, seq_len=job.seq_len, grad_ckpt=ckpt,
        lora_r=meth.lora_r, lora_targets=meth.lora_targets, lora_dropout=meth.lora_dropout,
        dpo_reference=ref, device_context=gpu.name != "cpu", attention=job.attention,
    )  # fmt: skip


def _evaluate_shape(
    job: Job, m, p, wl, tokens_total, steps, mbs, objective, shape, skip=0, stop=None
) -> list[Candidate]:
    """One shape's candidates over micro-batch sizes (those above `skip`), stopping at the first that does
    not fit, or from which on `stop(mb)` says no larger micro-batch can win."""
    method, gpu, n, (z, off_opt, off_par), ref, ckpt = shape
    ckpt_bytes = 16.0 * (p.total if method == "full" else p.lora)  # weights + Adam state, fp32
    cal = job.calibration.get(f"{gpu.name}/{method}", {})
    f_tps, f_mem, f_over = (cal.get(k, 1.0) for k in ("tokens_per_s", "peak_mem", "overhead"))
    out: list[Candidate] = []
    for mb in mbs:
        if mb * n > job.global_batch and mb > 1:
            break  # a micro-step may not exceed the global batch
        if mb <= skip:
            continue
        if stop is not None and wl.counts is not None and stop(mb):
            break
        s = _setup(job, objective, method, n, z, off_opt, off_par, mb, ref, ckpt, gpu)
        mem = peak_memory(m, p, s)
        if f_mem != 1.0:  # the factor was fitted on the measured part only (ftlaunch/forecast/compare.py)
            measured = measured_memory(mem.total, mem.overhead, gpu.name)
            mem = replace(mem, calibration=(f_mem - 1.0) * measured)
        if mem.total > (1 - FIT_MARGIN) * gpu.memory_gib * GiB:
            out.append(Candidate(gpu, s, 0, mem, None, 0.0, None, 0))
            break  # larger micro-batches need more memory still
        accum = max(1, math.ceil(job.global_batch / (mb * n)))
        # Priced at the length the micro-step is padded to; tokens/s counts trained tokens only.
        pad_len, useful = wl.speed(mb)
        padded = wl.padded(mb)
        s_run = s if pad_len == s.seq_len and not padded else replace(s, seq_len=pad_len, padded=padded)
        st = step_time(m, p, s_run, gpu, job.cluster, accum)
        tps = tokens_per_s_per_gpu(st, s_run) * useful * f_tps
        step_s = tokens_total / steps / (tps * n)
        every = job.checkpoint_every or max(1, min(steps, round(CHECKPOINT_TARGET_S / step_s)))
        c = costs.estimate(tokens_total, tps, n, gpu.price_per_gpu_hour or 0.0, steps, 2.0 * p.total,
                           ckpt_bytes, every, f_over, costs.startup_s(gpu.name))  # fmt: skip
        out.append(Candidate(gpu, s, accum, mem, st, tps, c, every))
    return out


def _key(job: Job):
    # Rounded so that sub-cent differences fall through to the simpler plan.
    if job.optimize == "time":
        return lambda c: (round(c.cost.hours, 2), round(c.cost.usd, 2), c.complexity)
    return lambda c: (round(c.cost.usd, 2), round(c.cost.hours, 2), c.complexity)


def usd(x: float) -> str:
    """Dollars as people read them: 4 decimals under a cent, none from $100."""
    return f"${x:.4f}" if x < 0.01 else f"${x:,.2f}" if x < 100 else f"${x:,.0f}"


def choose(job: Job, prune: bool = True) -> PlanResult:
    check_pins(job)
    check_micro_batch(job)
    cands, params = evaluate(job, prune)
    objective = objective_of(job)
    key = _key(job)
    budget = job.budget
    fitting = [c for c in cands if c.fits]
    in_budget = [c for c in fitting if budget is None or c.cost.usd <= budget]

    def best(pool: list[Candidate], method: str) -> Candidate | None:
        pool = [c for c in pool if c.method == method]
        return min(pool, key=key) if pool else None

    methods = _methods(job)
    reason = ""
    chosen: Candidate | None = None
    if len(methods) == 1:
        chosen = best(in_budget, methods[0])
        reason = f"method pinned to {methods[0]}"
    else:
        # LoRA that only fits by streaming the base weights from host memory counts as "low VRAM".
        on_gpu = [c for c in in_budget if not c.setup.offload_params or job.pins.offload == "all"]
        lora = best(on_gpu, "lora")
        if lora is None:
            chosen = best(in_budget, "qlora")
            lora_any = best([c for c in fitting if not c.setup.offload_params], "lora")
            if lora_any is None:
                reason = "low VRAM: LoRA's bf16 base fits on no offered GPU, so QLoRA (4-bit base)"
            else:
                reason = f"budget tight: cheapest LoRA plan costs {usd(lora_any.cost.usd)}, so QLoRA"
            if chosen is None:
                chosen = best(in_budget, "lora")
                reason = "QLoRA fits nowhere within budget: LoRA with parameters offloaded to the CPU"
            if chosen is None and best(in_budget, "full") is not None:
                # Neither adapter fits (e.g. activations without checkpointing) while sharded full FT does.
                chosen = best(in_budget, "full")
                reason = "neither LoRA nor QLoRA fits on the offered GPUs: full fine-tuning, sharded"
                if all(c.method == "full" for c in cands):  # zero=1/2 or optimizer offload pinned
                    reason = "the pins leave only full fine-tuning (adapters gain nothing from them)"
        elif job.domain_shift == "large":
            full = best([c for c in in_budget if c.setup.zero == 3 or c.setup.n_gpus == 1], "full")
            full = full or best(in_budget, "full")
            if full is not None:
                chosen, reason = full, "large domain shift: full fine-tuning (ZeRO-3 where sharded)"
            else:
                chosen = lora
                cheapest_full = best(fitting, "full")
                why = f"costs {usd(cheapest_full.cost.usd)}" if cheapest_full else "fits on no offered GPU"
                reason = f"large domain shift, but full fine-tuning {why}: LoRA instead"
        else:
            chosen, reason = lora, "small domain shift, budget allows it: LoRA (the default)"
    if chosen is not None and objective == "dpo":
        reason += "; preference data: DPO stage"

    cheapest = min(fitting, key=_key(replace(job, optimize="cost"))) if fitting else None
    if chosen is None:
        if cheapest is None:
            smallest = min(cands, key=lambda c: c.memory.total / (c.gpu.memory_gib * GiB))
            reason = (
                f"nothing fits in memory: the smallest need is {smallest.peak_gib:.1f} GiB on "
                f"{smallest.gpu.name} ({smallest.gpu.memory_gib:g} GiB); offer larger GPUs or lower seq_len"
            )
        else:
            reason = (
                f"no plan fits the budget of {usd(budget)}: the cheapest feasible plan is "
                f"{cheapest.label()} at {usd(cheapest.cost.usd)}; raise +budget or shrink the job"
            )

    rejected = _alternatives(cands, chosen, budget, key, job)
    lr = job.method.learning_rate or DEFAULT_LR[(chosen.method if chosen else "lora", objective)]
    return PlanResult(chosen, reason, rejected, objective, cheapest, len(cands), params, lr)


def _alternatives(cands, chosen, budget, key, job: Job) -> list[Rejected]:
    """The best candidate of each other method, of each other GPU type, and of each other memory layout
    (GPU count, ZeRO stage, offload) of the choice, each with the reason it lost; interleaved so the first
    rows show different kinds of alternative rather than ten GPU counts of one plan."""
    kinds: dict[str, dict[tuple, list[Candidate]]] = {"method": {}, "gpu": {}, "layout": {}}
    for c in cands:
        kinds["method"].setdefault((c.method,), []).append(c)
        if chosen is None or c.method == chosen.method:
            kinds["gpu"].setdefault((c.method, c.gpu.name), []).append(c)
        if chosen is not None and c.method == chosen.method and c.gpu.name == chosen.gpu.name:
            s = c.setup
            kinds["layout"].setdefault((s.n_gpus, s.zero, s.offload_optimizer, s.offload_params), []).append(
                c
            )
    ranked: list[list[tuple[tuple, Rejected]]] = []
    for groups in kinds.values():
        rows = [_rejection(pool, chosen, budget, key, job) for pool in groups.values()]
        ranked.append(sorted((r for r in rows if r is not None), key=lambda t: t[0]))
    seen, out = set(), []
    for tier in zip_longest(*ranked):
        for item in tier:
            if item is not None and item[1].candidate.label() not in seen:
                seen.add(item[1].candidate.label())
                out.append(item[1])
    return out


def _rejection(pool, chosen, budget, key, job: Job) -> tuple[tuple, Rejected] | None:
    fit = [c for c in pool if c.fits]
    c = min(fit, key=key) if fit else min(pool, key=lambda c: c.memory.total)
    if chosen is not None and c == chosen:
        return None
    if not c.fits:
        margin = f" - {FIT_MARGIN:.0%} margin" if c.peak_gib <= c.gpu.memory_gib else ""
        return (2, c.peak_gib / c.gpu.memory_gib), Rejected(
            c, f"needs {c.peak_gib:.1f} GiB > {c.gpu.memory_gib:g} GiB{margin}"
        )
    if budget is not None and c.cost.usd > budget:
        return (1, c.cost.usd), Rejected(c, f"over budget by {usd(c.cost.usd - budget)}")
    if chosen is None:
        return (0, c.cost.usd), Rejected(c, "")
    if c.method != chosen.method:
        why = f"{METHOD_NAMES[c.method]}: not what the decision flow picks here"
    elif job.optimize == "time":
        why = f"{c.cost.hours - chosen.cost.hours:+.2f} h slower"
    elif c.cost.usd > chosen.cost.usd:
        why = f"{usd(c.cost.usd - chosen.cost.usd)} more"
    else:
        why = f"same cost, {c.cost.hours - chosen.cost.hours:+.2f} h"
    return (0, c.cost.usd), Rejected(c, why)
