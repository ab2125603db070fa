"""PlanResult (the planner's choice) -> Plan (the plan.json contract)."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timezone

from ftlaunch.contract.plan import (
    ClusterRef,
    DataRef,
    Forecast,
    ModelRef,
    Plan,
    Resources,
    TrackingRef,
    Training,
)
from ftlaunch.forecast import workload
from ftlaunch.forecast.memory import GiB
from ftlaunch.forecast.specs import Job
from ftlaunch.planning.planner import PlanResult


def to_plan(job: Job, result: PlanResult, run_dir: str, tracking: TrackingRef | None = None) -> Plan:
    c = result.chosen
    assert c is not None, "to_plan needs a chosen candidate"
    s, m, meth = c.setup, job.model, job.method
    global_batch = s.micro_batch * c.grad_accum * s.n_gpus
    wl = workload.of(job, s.objective)  # packed rows with packing, kept rows when TRL drops some
    max_steps = max(1, math.ceil(wl.rows * job.epochs / global_batch))
    gpn = min(s.n_gpus, job.cluster.gpus_per_node)
    return Plan(
        job_name=job.job_name,
        model=ModelRef(name=m.name, path=m.path, n_params=result.params.total, arch=asdict(m)),
        data=DataRef(
            name=job.data.name,
            path=job.data.path,
            format=job.data.format,
            split=job.data.split,
            n_samples=job.data.n_samples,
            tokens_per_sample=job.data.tokens_per_sample,
            packing=job.data.packing,
        ),
        training=Training(
            method=s.method,
            objective=s.objective,
            seq_len=s.seq_len,
            epochs=job.epochs,
            micro_batch=s.micro_batch,
            grad_accum=c.grad_accum,
            global_batch=global_batch,
            max_steps=max_steps,
            grad_ckpt=s.grad_ckpt,
            learning_rate=result.learning_rate,
            lora_r=meth.lora_r,
            lora_alpha=meth.lora_alpha,
            lora_dropout=meth.lora_dropout,
            lora_targets=meth.lora_targets,
            dpo_beta=meth.dpo_beta,
            dpo_reference=s.dpo_reference,
            checkpoint_every=min(c.checkpoint_every, max_steps),
            seed=job.seed,
            precision="bf16",
            attention=job.attention,
        ),
        resources=Resources(
            gpu=c.gpu.name,
            n_gpus=s.n_gpus,
            nodes=math.ceil(s.n_gpus / gpn),
            gpus_per_node=gpn,
            zero_stage=s.zero,
            offload_optimizer=s.offload_optimizer,
            offload_params=s.offload_params,
            price_per_gpu_hour=c.gpu.price_per_gpu_hour or 0.0,
        ),
        forecast=Forecast(
            peak_mem_gib=round(c.memory.total / GiB, 3),
            mem_breakdown_gib=c.memory.gib(),
            tokens_per_s_per_gpu=round(c.tokens_per_s_per_gpu, 3),
            tokens_total=c.cost.tokens_total,
            hours=c.cost.hours,
            gpu_hours=c.cost.gpu_hours,
            cost_usd=c.cost.usd,
            calibrated=bool(job.calibration.get(f"{c.gpu.name}/{s.method}")),
        ),
        budget_usd=job.budget,
        cluster=ClusterRef(
            name=job.cluster.name,
            executor=job.cluster.executor,
            partition=job.cluster.partition,
            account=job.cluster.account,
            qos=job.cluster.qos,
            cpus_per_gpu=job.cluster.cpus_per_gpu,
            mem_per_gpu_gib=job.cluster.mem_per_gpu_gib,
            gpu_flag=job.cluster.gpu_flag,
            inter_node_gb_s=job.cluster.inter_node_gb_s,  # the forecast's fabric (ftlaunch/forecast/predict.py)
            gres=job.cluster.gres.get(c.gpu.name),  # typed gres of the planned GPU (discovered clusters)
            max_time_min=job.cluster.max_time_min,
        ),
        cost_cap_usd=job.cost_cap,
        tracking=tracking or TrackingRef(),
        run_dir=run_dir,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        reason=result.reason,
        extra={"data_tokens": workload.describe(wl, s.micro_batch)},
    )
