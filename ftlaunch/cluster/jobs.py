"""Submitted jobs as Slurm reports them, and the run folders they belong to.

A run is named by its folder (path), its name under output_root (or a unique prefix), or its Slurm job id.
State comes from sacct (slurmdbd), or scontrol when accounting is off or lags; every Slurm call is under the
timeout of ftlaunch/cluster/slurm.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftlaunch.contract.errors import ConfigError


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: str  # first word of sacct State: PENDING, RUNNING, COMPLETED, CANCELLED, OUT_OF_MEMORY, ...
    exit_code: str = ""
    derived_exit_code: str = ""
    elapsed: str = ""
    nodes: str = ""
    restarts: int = 0


def job_id_of(run_dir: Path) -> str | None:
    f = run_dir / "job_id"
    return f.read_text().strip() if f.exists() else None


def runs(root: Path) -> list[Path]:
    """Run folders under root, oldest first (names carry the launch time)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / "plan.json").is_file()]
    return sorted(found, key=lambda p: ((p / "plan.json").stat().st_mtime, p.name))


def find_run(ref: str, root: Path) -> Path:
    p = Path(ref)
    if (p / "plan.json").is_file():
        return p.resolve()
    all_runs = runs(root)
    if ref.isdigit():
        hits = [r for r in all_runs if job_id_of(r) == ref]
    else:
        hits = [r for r in all_runs if r.name == ref] or [r for r in all_runs if r.name.startswith(ref)]
    if len(hits) == 1:
        return hits[0].resolve()
    if not hits:
        raise ConfigError(
            f"no run {ref!r} under {root}/: give a run folder, its name or its Slurm job id (see `launch list`)"
        )
    raise ConfigError(f"{ref!r} matches {len(hits)} runs under {root}/: give more of the name")


def query(job_ids: list[str]) -> dict[str, JobInfo]:
    """State of the jobs: sacct when accounting answers, else squeue + scontrol (finished jobs kept MinJobAge)."""
    from ftlaunch.cluster.slurm import run_slurm

    if not job_ids:
        return {}
    fields = "JobID,State,ExitCode,DerivedExitCode,Elapsed,NodeList"
    out: dict[str, JobInfo] = {}
    try:
        text = run_slurm(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", fields])
        for line in text.splitlines():
            f = line.split("|")
            if len(f) >= 6 and f[0] in job_ids:
                out[f[0]] = JobInfo(f[0], f[1].split()[0] if f[1] else "UNKNOWN", f[2], f[3], f[4], f[5])
    except ConfigError as e:
        if "not reachable" in str(e):  # hanging: scontrol would hang too
            raise
    for jid in job_ids:  # sacct lags a few seconds behind a submission; scontrol knows at once
        if jid in out and out[jid].state not in ("PENDING", "REQUEUED"):
            continue
        try:
            text = run_slurm(["scontrol", "show", "job", "-o", jid])
        except ConfigError as e:
            if "Invalid job id" in str(e):
                continue
            raise
        from ftlaunch.cluster.discovery import parse_kv

        d = parse_kv(text.splitlines()[0]) if text.strip() else {}
        if d.get("JobState"):
            out[jid] = JobInfo(jid, d["JobState"], d.get("ExitCode", ""), d.get("DerivedExitCode", ""),
                               d.get("RunTime", ""), d.get("NodeList", ""), int(d.get("Restarts") or 0))  # fmt: skip
    return out
