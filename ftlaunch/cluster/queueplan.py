"""Plans that know the queue: for each candidate, GPUs free now and the scheduler's own start estimate
(`sbatch --test-only`, Slurm's backfill answer); goal.optimize=time then minimises wait + run. A plan longer
than the partition's MaxTime runs as checkpointed segments (the batch script's USR1 trap checkpoints and
requeues at each limit) or is rejected when a segment is too short to make progress.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from ftlaunch.contract.errors import ConfigError

# A segment pays start-up (imports, model load: overhead in ftlaunch/forecast/cost.py), the USR1 lead before the limit
# (ftlaunch/cluster/batch.py SIGNAL_LEAD_S) and a checkpoint write; under this much wall time per segment, too little
# is left for training to be worth a requeue cycle.
MIN_SEGMENT_MIN = 15
_START = re.compile(r"to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")


@dataclass(frozen=True)
class QueueView:
    label: str
    gpu: str
    n_gpus: int
    free_gpus: int
    wait_s: float | None  # None: Slurm cannot run it here (reason says why)
    run_s: float
    reason: str = ""

    @property
    def total_s(self) -> float:
        return math.inf if self.wait_s is None else self.wait_s + self.run_s


def limit_minutes(hours: float) -> int:
    from ftlaunch.cluster.batch import time_limit
    from ftlaunch.cluster.discovery import parse_minutes

    return parse_minutes(time_limit(hours)) or 0


def segments(hours: float, max_time_min: int | None) -> int:
    """How many MaxTime segments the plan's time limit needs (1: it fits)."""
    need = limit_minutes(hours)
    if max_time_min is None or need <= max_time_min:
        return 1
    if max_time_min < MIN_SEGMENT_MIN:
        raise ConfigError(
            f"the plan needs {need} min but partition MaxTime is {max_time_min} min, too short for checkpointed "
            f"segments (each needs >= {MIN_SEGMENT_MIN} min: start-up, checkpoint, the USR1 warning): "
            "pick a partition with a longer MaxTime (cluster.partition=...)"
        )
    return math.ceil(need / max_time_min)


def start_estimate(partition: str, gres: str | None, nodes: int, gpus_per_node: int, minutes: int,
                   now: datetime | None = None) -> tuple[float | None, str]:  # fmt: skip
    """Seconds until Slurm would start such a job (its backfill estimate), or None with Slurm's reason."""
    from ftlaunch.cluster.slurm import _run

    gpu = f"gpu:{gres}:{gpus_per_node}" if gres else f"gpu:{gpus_per_node}"
    cmd = ["sbatch", "--test-only", f"--partition={partition}", f"--nodes={nodes}", "--ntasks-per-node=1",
           f"--gres={gpu}", f"--time={max(1, minutes)}", "--wrap=true"]  # fmt: skip
    p = _run(cmd)
    out = (p.stderr + p.stdout).strip()
    m = _START.search(out)
    if p.returncode != 0 or not m:
        last = out.splitlines()[-1] if out else f"exit {p.returncode}"
        return None, last.replace("sbatch: error: ", "").replace("Batch job submission failed: ", "")
    start = datetime.fromisoformat(m.group(1))
    return max(0.0, (start - (now or datetime.now())).total_seconds()), ""


def views(job, result) -> list[QueueView]:
    """The chosen plan and every in-budget alternative of the same method, each with its queue outlook."""
    from ftlaunch.cluster import discovery as slurminfo

    c0 = result.chosen
    pool = [c0] + [
        r.candidate
        for r in result.rejected
        if r.candidate.fits
        and r.candidate.method == c0.method
        and (job.budget is None or r.candidate.cost.usd <= job.budget)
    ]
    info = slurminfo.read()
    part = info.partition(job.cluster.partition)
    out, cache = [], {}
    for c in pool:
        n = c.setup.n_gpus
        gpn = min(n, job.cluster.gpus_per_node)
        nodes = math.ceil(n / gpn)
        gres = job.cluster.gres.get(c.gpu.name)
        minutes = min(limit_minutes(c.cost.hours), part.max_time_min or 10**9)
        k = (gres, nodes, gpn, minutes)
        if k not in cache:
            cache[k] = start_estimate(part.name, gres, nodes, gpn, minutes)
        wait, why = cache[k]
        free = sum(
            max(0, nd.n_gpus - nd.gpus_alloc)
            for nd in info.nodes_of(part)
            if any(t == gres for t, _ in nd.gpus) and "DOWN" not in nd.state and "DRAIN" not in nd.state
        )
        out.append(QueueView(c.label(), c.gpu.name, n, free, wait, c.cost.hours * 3600, why))
    return out


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "never"
    return "now" if s < 60 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def apply(job, result, console=None):
    """Queue-aware choice. Returns the (possibly re-chosen) PlanResult; raises ConfigError when Slurm can run
    none of the plans, or when the plan cannot be cut into MaxTime segments."""
    from dataclasses import replace

    from ftlaunch.planning.planner import Rejected

    vs = views(job, result)
    chosen_view = vs[0]
    best = chosen_view
    if job.optimize == "time":
        # hours rounded as the planner's own key does (ftlaunch/planning/planner.py _key): a tie keeps its choice
        best = min(vs, key=lambda v: round(v.total_s / 3600, 2))
    if best.wait_s is None:
        raise ConfigError(
            f"Slurm cannot run {chosen_view.label} on partition {job.cluster.partition}: {chosen_view.reason}"
        )
    if console is not None:
        console.print("queue      " + "; ".join(
            f"{v.label}: {v.free_gpus} GPUs free, starts {_fmt_s(v.wait_s)}" + (f" ({v.reason})" if v.reason else "")
            for v in vs[:4]))  # fmt: skip
    if best is chosen_view:
        reason = f"{result.reason}; queue: starts {_fmt_s(best.wait_s)} ({best.free_gpus} {best.gpu} free)"
        return replace(result, reason=reason)
    new = next(r.candidate for r in result.rejected if r.candidate.label() == best.label)
    why = (f"queue: {best.label} starts {_fmt_s(best.wait_s)} and ends in {_fmt_s(best.total_s)}; "
           f"{chosen_view.label} would start {_fmt_s(chosen_view.wait_s)}")  # fmt: skip
    rejected = [r for r in result.rejected if r.candidate.label() != best.label]
    rejected.insert(0, Rejected(result.chosen, f"waits {_fmt_s(chosen_view.wait_s)} in the queue"))
    return replace(result, chosen=new, reason=f"{result.reason}; {why}", rejected=rejected)


def plan_for_queue(job, result, console=None):
    """cli hook (Slurm clusters with discovered gres): queue-aware choice, then the MaxTime segments check."""
    result = apply(job, result, console)
    n = segments(result.chosen.cost.hours, job.cluster.max_time_min)
    if n > 1 and console is not None:
        console.print(
            f"segments   {n} x {job.cluster.max_time_min} min (partition MaxTime): each ends with a checkpoint "
            "(USR1) and a requeue; the next resumes from it"
        )
    return result
