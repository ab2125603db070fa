"""What the terminal shows while a job runs here: our own lines and a progress bar; the rest goes to train.log.

The recipe marks the lines meant for a person with MARK (`say`); everything else it or a library prints
(warnings, dataset/tokenizer progress bars, DeepSpeed banners) goes only to run_dir/train.log. The bar is
driven by run_dir/metrics.jsonl (one row per optimizer step, written by the recipe), with the ETA from the
measured step time and the spend from the plan's price. `launch -v` (FTLAUNCH_VERBOSE=1) shows everything.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from ftlaunch.contract.say import MARK


def route_logs(log_path: Path) -> None:
    """This process's library logging (MLflow's store set-up, its warnings, Python warnings) to the run's
    train.log instead of the terminal. Must run before mlflow is imported: mlflow installs its own stderr
    handler at import unless MLFLOW_CONFIGURE_LOGGING is false."""
    import logging

    os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name, level in (
        ("mlflow", logging.INFO),
        ("alembic", logging.WARNING),
        ("py.warnings", logging.INFO),
    ):
        lg = logging.getLogger(name)
        lg.handlers, lg.propagate = [handler], False
        lg.setLevel(level)
    logging.captureWarnings(True)


def last_step(metrics: Path) -> tuple[int, float] | None:
    """(step, unix time) of the newest complete row of metrics.jsonl, or None."""
    try:
        text = metrics.read_text()
    except OSError:
        return None
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    for line in reversed(lines):
        try:
            row = json.loads(line)
            return int(row["step"]), float(row.get("time", time.time()))
        except (ValueError, KeyError, TypeError):
            continue
    return None


def eta_s(
    step: int, max_steps: int, first: tuple[int, float] | None, now: tuple[int, float] | None
) -> float | None:
    """Seconds left from the measured time per step since the first step seen (model loading excluded)."""
    if first is None or now is None or now[0] <= first[0]:
        return None
    per_step = (now[1] - first[1]) / (now[0] - first[0])
    return max(max_steps - step, 0) * per_step


def _clock(s: float | None) -> str:
    if s is None:
        return "-:--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _ledger_cost(run_dir: Path, fallback: float) -> float:
    """The cost actuals.json reports, so the bar's last figure equals the summary's actual cost."""
    try:
        return float(json.loads((run_dir / "actuals.json").read_text())["cost_usd"])
    except (OSError, ValueError, KeyError, TypeError):
        return fallback


def run_quiet(cmd: list[str], env: dict[str, str], run_dir: Path, max_steps: int, usd_per_s: float,
              console=None) -> int:  # fmt: skip
    """Run cmd with all output to run_dir/train.log; show marked lines and a progress bar. Returns the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = console or Console(highlight=False)
    log_path, metrics = run_dir / "train.log", run_dir / "metrics.jsonl"
    lines: queue.Queue[str] = queue.Queue()
    errors: list[str] = []  # to the real stderr once the bar is gone (rich redirects it while live)
    with open(log_path, "ab") as log:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env})
        assert p.stdout is not None

        def pump() -> None:
            for raw in p.stdout:
                log.write(raw)
                log.flush()
                text = raw.decode(errors="replace").rstrip("\r\n")
                if text.startswith(MARK):
                    lines.put(text[len(MARK) :])

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        t0 = time.monotonic()
        first = None
        bar = Progress(
            TextColumn("[bold]training[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "steps  elapsed {task.fields[elapsed]}  ETA {task.fields[eta]}  spent {task.fields[spent]}"
            ),
            console=console,
            transient=False,
        )
        with bar:
            task = bar.add_task("train", total=max_steps, elapsed="0:00", eta="-:--", spent="$0.0000")
            while True:
                done = p.poll() is not None and not reader.is_alive()
                while not lines.empty():
                    text = lines.get()
                    if text.startswith("error:"):
                        errors.append(text)
                    else:
                        console.print(text, markup=False, highlight=False, soft_wrap=True)
                now = last_step(metrics)
                if now is not None and first is None:
                    first = now
                step = now[0] if now else 0
                el = time.monotonic() - t0
                spent = el * usd_per_s
                if (
                    done
                ):  # the last frame shows what the run's own ledger charged (ftlaunch/recipes/actuals.py)
                    spent = _ledger_cost(run_dir, spent)
                bar.update(task, completed=min(step, max_steps), elapsed=_clock(el),
                           eta=_clock(eta_s(step, max_steps, first, now)), spent=f"${spent:,.4f}")  # fmt: skip
                if done:
                    break
                time.sleep(0.25)
        rc = p.wait()
    for text in errors:
        print(text, file=sys.stderr, flush=True)
    if rc not in (0, 2):  # a crash: the reason is in the log, show its end
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        console.print("[dim]--- end of " + str(log_path) + "[/dim]", highlight=False)
        for ln in tail:
            console.print(ln, markup=False, highlight=False)
    return rc
