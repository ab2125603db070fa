"""`launch status [RUN] | list | logs RUN [-f] | cancel RUN`: submitted jobs, the way submitit users expect.

A RUN is a run folder (path), its name under output_root (or a unique prefix), or its Slurm job id. State
comes from sacct (slurmdbd), or squeue/scontrol when accounting is off; every Slurm call is under the
timeout of ftlaunch/cluster/slurm.py. A finished job's outcome is classified once (ftlaunch/cluster/outcome.py),
written to run_dir/outcome.json and to its MLflow run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ftlaunch.cluster import outcome
from ftlaunch.cluster.jobs import JobInfo, find_run, job_id_of, query, runs
from ftlaunch.contract.errors import EXIT_BAD_INPUT, ConfigError
from ftlaunch.tracking.outcome import push as push_outcome

COMMANDS = ("status", "list", "logs", "cancel")


def _plan_label(run_dir: Path) -> str:
    try:
        p = json.loads((run_dir / "plan.json").read_text())
        r, t = p["resources"], p["training"]
        return f"{t['method']} {r['n_gpus']}x{r['gpu']}" + (f" {r['nodes']} nodes" if r["nodes"] > 1 else "")
    except (OSError, ValueError, KeyError):
        return "?"


def _sweep(run_dir: Path) -> str:
    f = run_dir / "sweep"
    return f.read_text().strip() if f.exists() else "-"


def cmd_list(root: Path) -> int:
    rs = runs(root)
    if not rs:
        print(f"no runs under {root}/")
        return 0
    ids = [j for j in (job_id_of(r) for r in rs) if j]
    states = query(ids)
    rows = []
    for r in rs:
        jid = job_id_of(r)
        st = _state_word(r, states.get(jid) if jid else None, jid)
        rows.append((r.name, jid or "-", st, _plan_label(r), _sweep(r)))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(HEADER)]
    for row in (HEADER, *rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


HEADER = ("RUN", "JOB", "STATE", "PLAN", "SWEEP")


def _state_word(run_dir: Path, info: JobInfo | None, jid: str | None) -> str:
    if jid is None:
        return "local" if (run_dir / "train.log").exists() else "planned"
    if info is None:
        return "UNKNOWN"
    o = outcome.classify(info.state, info.exit_code, info.derived_exit_code, _log_tail(run_dir, jid))
    return info.state if o is None or o == info.state else f"{info.state} ({o})"


def _log(run_dir: Path, jid: str) -> Path:
    return run_dir / f"slurm-{jid}.out"


def _log_tail(run_dir: Path, jid: str, n: int = 64 * 1024) -> str:
    f = _log(run_dir, jid)
    if not f.exists():
        return ""
    with open(f, "rb") as fh:
        fh.seek(max(0, f.stat().st_size - n))
        return fh.read().decode(errors="replace")


def cmd_status(run_dir: Path) -> int:
    jid = job_id_of(run_dir)
    print(f"run      {run_dir.name}  ({run_dir})")
    print(f"plan     {_plan_label(run_dir)}")
    if jid is None:
        print("job      none (not submitted to Slurm)")
        return 0
    info = query([jid]).get(jid)
    if info is None:
        print(f"job      {jid}  unknown to Slurm (older than MinJobAge and no accounting)")
        return 0
    print(f"job      {jid}  {info.state}  elapsed {info.elapsed or '-'}  nodes {info.nodes or '-'}"
          f"  exit {info.exit_code or '-'}" + (f"  restarts {info.restarts}" if info.restarts else ""))  # fmt: skip
    print(f"log      {_log(run_dir, jid)}")
    if info.state in outcome.TERMINAL:
        o = _record(run_dir, info.state, info.exit_code, info.derived_exit_code, _log_tail(run_dir, jid))
        if o.kind != "COMPLETED":
            print(f"failure  {o.kind}: {o.detail}")
        show_comparison(run_dir)
    return 0


def _record(run_dir: Path, state: str, exit_code: str, derived: str, log: str) -> outcome.Outcome:
    """The run's outcome, classified and written once; a new one is also pushed to its MLflow run."""
    o = outcome.read(run_dir)
    if o is None:
        o = outcome.record(run_dir, state, exit_code, derived, log)
        push_outcome(run_dir, o)
    return o


def show_comparison(run_dir: Path) -> None:
    """Predicted vs actual for a finished run (ftlaunch/tracking/summary.py's table, as at the end of a local run)."""
    if (run_dir / "actuals.json").exists():
        from ftlaunch.tracking.summary import show

        show(run_dir)


def cmd_logs(run_dir: Path, follow: bool, poll_s: float = 1.0) -> int:
    jid = job_id_of(run_dir)
    if jid is None:
        f = run_dir / "train.log"
        if not f.exists():
            raise ConfigError(f"run {run_dir.name} has no log: it was only planned (dry_run)")
        sys.stdout.write(f.read_text(errors="replace"))
        return 0
    f = _log(run_dir, jid)
    pos = 0
    while True:
        if f.exists():
            with open(f, "rb") as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos += len(chunk)
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        if not follow:
            if not f.exists():
                print(f"(no output yet: job {jid} has not started writing {f.name})")
            return 0
        info = query([jid]).get(jid)
        if info is None or info.state in outcome.TERMINAL:
            if f.exists() and f.stat().st_size > pos:
                continue  # the last lines written before the end
            return 0
        time.sleep(poll_s)


def cmd_cancel(run_dir: Path) -> int:
    from ftlaunch.cluster.slurm import run_slurm

    jid = job_id_of(run_dir)
    if jid is None:
        raise ConfigError(f"run {run_dir.name} was not submitted to Slurm: nothing to cancel")
    info = query([jid]).get(jid)
    if info is not None and info.state in outcome.TERMINAL:
        print(f"job {jid} already {info.state}: nothing to cancel")
        return 0
    run_slurm(["scancel", jid])
    _record(run_dir, "CANCELLED", "0:15", "", "")
    print(f"cancelled Slurm job {jid} ({run_dir.name})")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="launch", description="Submitted jobs: status, list, logs, cancel.")
    ap.add_argument("command", choices=COMMANDS)
    ap.add_argument("run", nargs="?", help="run folder, its name under --root, or the Slurm job id")
    ap.add_argument("-f", "--follow", action="store_true", help="logs: keep printing until the job ends")
    ap.add_argument("--root", default="runs", help="output_root the runs were launched with (default runs)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    try:
        if args.command == "list" or (args.command == "status" and not args.run):
            return cmd_list(root)
        if not args.run:
            raise ConfigError(
                f"launch {args.command} needs a RUN: a run folder, its name, or its Slurm job id"
            )
        run_dir = find_run(args.run, root)
        if args.command == "status":
            return cmd_status(run_dir)
        if args.command == "logs":
            return cmd_logs(run_dir, args.follow)
        return cmd_cancel(run_dir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
