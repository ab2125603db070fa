"""On-prem money: a budget in GPU-hours (`budget_unit=gpu_hours`), capped by the Slurm account's remaining
allocation (GrpTRESMins gres/gpu minus what sshare says it used) when accounting is on.

A GPU-hour budget prices every GPU at 1 per GPU-hour, so the planner's cost *is* GPU-hours: the cheapest plan
uses the fewest, the budget check and the run-time guard (ftlaunch/recipes/actuals.py) count GPU-hours.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass, replace

from ftlaunch.contract.errors import ConfigError

UNITS = ("usd", "gpu_hours")


@dataclass(frozen=True)
class Allocation:
    account: str
    limit_gpu_hours: float | None  # None: no GrpTRESMins on gres/gpu
    used_gpu_hours: float

    @property
    def remaining(self) -> float | None:
        return None if self.limit_gpu_hours is None else max(0.0, self.limit_gpu_hours - self.used_gpu_hours)


def _tres(s: str, key: str = "gres/gpu") -> float | None:
    m = re.search(rf"(?:^|,){re.escape(key)}=(\d+(?:\.\d+)?)", s or "")
    return float(m.group(1)) if m else None


def default_account() -> str | None:
    from ftlaunch.cluster.slurm import run_slurm

    out = run_slurm(["sacctmgr", "-n", "-P", "show", "user", getpass.getuser(), "format=DefaultAccount"])
    acct = out.strip().splitlines()[0].strip() if out.strip() else ""
    return acct or None


def allocation(account: str) -> Allocation:
    """From `sshare -l`: GrpTRESMins (the limit) and GrpTRESRaw (usage, decayed), both in GPU-minutes."""
    from ftlaunch.cluster.slurm import run_slurm

    out = run_slurm(["sshare", "-n", "-P", "-l", "-A", account, "-o", "Account,User,GrpTRESMins,GrpTRESRaw"])
    for line in out.splitlines():
        f = [x.strip() for x in line.split("|")]
        if len(f) >= 4 and f[0] == account and not f[1]:  # the account's own row, not a user's
            lim = _tres(f[2])
            return Allocation(account, None if lim is None else lim / 60, (_tres(f[3]) or 0.0) / 60)
    raise ConfigError(
        f"Slurm account {account!r} not found in sshare: set cluster.account to one you belong to"
    )


def apply(job, cfg: dict):
    """The Job with GPU-hour pricing and the budget capped by the account's remaining allocation, and the
    line saying so."""
    unit = str(cfg.get("budget_unit") or "usd")
    if unit not in UNITS:
        raise ConfigError(f"budget_unit={unit!r} is not one of {', '.join(UNITS)}")
    if unit == "usd":
        return job, ""
    budget = job.budget
    alloc = None
    if job.cluster.executor == "slurm" and cfg.get("executor") != "local":
        account = job.cluster.account or default_account_or_none()
        if account:
            alloc = allocation(account)
            if alloc.remaining is not None:
                if alloc.remaining <= 0:
                    raise ConfigError(
                        f"Slurm account {account} has used its allocation ({alloc.used_gpu_hours:.1f} of "
                        f"{alloc.limit_gpu_hours:.1f} GPU-hours, sshare GrpTRESMins): ask for more or use another account"
                    )
                budget = alloc.remaining if budget is None else min(budget, alloc.remaining)
    gpus = tuple(replace(g, price_per_gpu_hour=1.0) for g in job.gpus)
    job = replace(job, gpus=gpus, budget=budget)
    return job, note(job, alloc)


def default_account_or_none() -> str | None:
    try:
        return default_account()
    except ConfigError as e:
        if "not reachable" in str(e):
            raise
        return None  # accounting off: no allocation to cap by


def note(job, alloc: Allocation | None) -> str:
    left = ""
    if alloc is not None and alloc.remaining is not None:
        left = (
            f"; account {alloc.account}: {alloc.remaining:.1f} of {alloc.limit_gpu_hours:.1f} GPU-hours left"
        )
    budget = "none" if job.budget is None else f"{job.budget:.1f} GPU-hours"
    return f"budget     {budget}{left} (figures in $ below are GPU-hours: each GPU priced at 1 per hour)"
