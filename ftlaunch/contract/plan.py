"""plan.json: the versioned contract between the login side (planning, submitting, reporting) and the
compute side (ftlaunch/recipes/).

Plain dataclasses, stdlib only, so a recipe can read a plan without Hydra and a script can read it
without torch. Bump PLAN_SCHEMA when a field changes meaning; readers refuse schemas they do not know.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

PLAN_SCHEMA = "ftlaunch.plan/v1"


@dataclass(frozen=True)
class ModelRef:
    name: str  # catalog key, e.g. "llama-3-8b"
    path: str  # from_pretrained() argument: HF id, local folder, or "builtin:tiny-llama"
    n_params: int  # exact, from the architecture
    arch: dict[str, Any]  # the HF-style facts the forecast used


@dataclass(frozen=True)
class DataRef:
    name: str
    path: str  # local file/folder, load_dataset() name, or "builtin:arith"
    format: str  # alpaca | messages | preference | text
    split: str
    n_samples: int
    tokens_per_sample: float  # mean tokens one sample costs (both sides of a preference pair)
    packing: bool


@dataclass(frozen=True)
class Training:
    method: str  # lora | qlora | full
    objective: str  # sft | dpo
    seq_len: int
    epochs: float
    micro_batch: int
    grad_accum: int
    global_batch: int  # samples per optimizer step = micro_batch * grad_accum * n_gpus
    max_steps: int
    grad_ckpt: bool
    learning_rate: float
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_targets: str  # "all-linear" or comma list
    dpo_beta: float
    dpo_reference: str  # adapter (LoRA: base with adapter off) | model (frozen copy) | precomputed
    checkpoint_every: int  # optimizer steps
    seed: int = 0
    precision: str = "bf16"
    attention: str = "sdpa"  # sdpa (flash/memory-efficient kernels) | eager (materializes s x s scores)


@dataclass(frozen=True)
class Resources:
    gpu: str  # catalog key, e.g. "h100-sxm"
    n_gpus: int
    nodes: int
    gpus_per_node: int
    zero_stage: int  # 0 = no DeepSpeed (DDP / single device)
    offload_optimizer: bool
    offload_params: bool
    price_per_gpu_hour: float


@dataclass(frozen=True)
class Forecast:
    peak_mem_gib: float  # per GPU, device total incl. CUDA context (what nvidia-smi shows), GiB
    mem_breakdown_gib: dict[str, float]
    tokens_per_s_per_gpu: float
    tokens_total: float
    hours: float
    gpu_hours: float
    cost_usd: float
    calibrated: bool = False


@dataclass(frozen=True)
class ClusterRef:
    """What the executors need of the cluster (ftlaunch/run/execute.py, ftlaunch/cluster/slurm.py)."""

    name: str
    executor: str = "slurm"  # local | slurm
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    cpus_per_gpu: int = 8
    mem_per_gpu_gib: float = 64
    gpu_flag: str = "gres"  # how Slurm is asked for GPUs: gres (--gres=gpu:N) | gpus-per-node
    inter_node_gb_s: float = (
        0.0  # the fabric the forecast costed (0: unstated, ftlaunch/forecast/throughput.py default)
    )
    gres: str | None = None  # Slurm gres type of the planned GPU (gpu:<gres>:N), from a discovered cluster
    max_time_min: int | None = None  # partition MaxTime: a longer plan runs as checkpointed segments


@dataclass(frozen=True)
class TrackingRef:
    """Where the run is tracked; uri is resolved at launch (MLflow's default depends on the cwd)."""

    enabled: bool = True
    uri: str | None = None
    experiment: str = "ftlaunch"


@dataclass(frozen=True)
class Plan:
    job_name: str
    model: ModelRef
    data: DataRef
    training: Training
    resources: Resources
    forecast: Forecast
    budget_usd: float | None
    cluster: ClusterRef
    run_dir: str
    created: str
    reason: str = ""  # why this plan was chosen, one line
    cost_cap_usd: float | None = (
        None  # runtime guard: checkpoint and stop before spending more (ftlaunch/recipes/actuals.py)
    )
    tracking: TrackingRef = field(default_factory=TrackingRef)
    schema: str = PLAN_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _part(cls, d: Any, where: str):
    """One section of plan.json -> its dataclass; unknown or missing keys are named, not a TypeError."""
    if not isinstance(d, dict):
        raise ValueError(f"plan.{where} must be an object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(
            f"plan.{where} has unknown field(s) {', '.join(unknown)}: written by another ftlaunch?"
        )
    try:
        return cls(**d)
    except TypeError as e:
        raise ValueError(f"plan.{where}: {e}") from None


def plan_from_dict(d: dict[str, Any]) -> Plan:
    """Fields added since v1 (cost_cap_usd, tracking, cluster.gpu_flag) have defaults: older plans still read."""
    schema = d.get("schema")
    if schema != PLAN_SCHEMA:
        raise ValueError(f"plan schema {schema!r} is not {PLAN_SCHEMA!r}: re-plan with this ftlaunch version")
    return Plan(
        job_name=d["job_name"],
        model=_part(ModelRef, d["model"], "model"),
        data=_part(DataRef, d["data"], "data"),
        training=_part(Training, d["training"], "training"),
        resources=_part(Resources, d["resources"], "resources"),
        forecast=_part(Forecast, d["forecast"], "forecast"),
        budget_usd=d["budget_usd"],
        cluster=_part(ClusterRef, d["cluster"], "cluster"),
        run_dir=d["run_dir"],
        created=d["created"],
        reason=d.get("reason", ""),
        cost_cap_usd=d.get("cost_cap_usd"),
        tracking=_part(TrackingRef, d.get("tracking") or {}, "tracking"),
        schema=schema,
        extra=d.get("extra", {}),
    )


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write via a temp file in the same folder + rename, so readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    atomic_write_text(path, json.dumps(plan.to_dict(), indent=2, sort_keys=False) + "\n")


def read_plan(path: str | os.PathLike[str]) -> Plan:
    with open(path) as f:
        return plan_from_dict(json.load(f))
