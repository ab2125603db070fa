"""TrainerCallbacks of the recipe: complete-checkpoint markers, graceful stop, budget guard, per-step metrics.

Stop decisions are taken at optimizer-step boundaries and agreed by every rank (one all-reduce), so all ranks
save the same checkpoint and leave the loop together; a rank that stopped alone would hang the others.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from ftlaunch.recipes import checkpoints
from ftlaunch.recipes.actuals import Ledger
from ftlaunch.recipes.signals import StopRequest


def _dist():
    d = torch.distributed
    return d if d.is_available() and d.is_initialized() and d.get_world_size() > 1 else None


def any_rank(flag: bool) -> bool:
    """True on every rank if `flag` is true on any rank (a no-op for a single process)."""
    d = _dist()
    if d is None:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if d.get_backend() == "nccl" else "cpu"
    t = torch.tensor([int(flag)], device=device)
    d.all_reduce(t, op=d.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    d = _dist()
    if d is not None:
        d.barrier()


class MarkComplete(TrainerCallback):
    """After a checkpoint is fully written by every rank, rank 0 marks it complete (see checkpoints.py)."""

    def on_save(self, args, state, control, **kwargs):
        barrier()
        if os.environ.get("FTLAUNCH_FAULT_KILL_IN_SAVE") == str(state.global_step):
            # fault injection for tests: die after the files are written, before the checkpoint is marked
            os.kill(os.getpid(), signal.SIGKILL)
        if state.is_world_process_zero:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.is_dir():
                checkpoints.mark_complete(path, state.global_step)
        return control


def _stop_here(control) -> None:
    control.should_save = True
    control.should_training_stop = True


class GracefulStop(TrainerCallback):
    """SIGUSR1/SIGTERM (recorded by signals.StopRequest) or a run_dir/STOP file: checkpoint, then leave."""

    def __init__(self, request: StopRequest, run_dir: Path) -> None:
        self.request = request
        self.stop_file = run_dir / "STOP"
        self.reason: str | None = None  # set once this callback stopped training

    def on_step_end(self, args, state, control, **kwargs):
        local = self.request.reason or ("STOP file" if self.stop_file.exists() else None)
        if self.reason is None and any_rank(local is not None):
            self.reason = local or "stop requested on another rank"
            _stop_here(control)
        return control


class BudgetGuard(TrainerCallback):
    """Stop (with a checkpoint) before the next step would take the run past its budget."""

    def __init__(self, ledger: Ledger, limit_usd: float | None) -> None:
        self.ledger = ledger
        self.limit = limit_usd
        self.reason: dict | None = None
        self._t_begin = 0.0
        self._steps = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t_begin = time.monotonic()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self._steps += 1
        if state.is_world_process_zero:
            self.ledger.save(every_s=5.0)
        if self.limit is None or self.reason is not None:
            return control
        step_s = (time.monotonic() - self._t_begin) / self._steps
        spent = self.ledger.cost_usd()
        next_step = step_s * self.ledger.rate_usd_per_s()
        if any_rank(spent + next_step > self.limit):
            self.reason = {
                "reason": "budget",
                "step": state.global_step,
                "spent_usd": spent,
                "next_step_usd": next_step,
                "limit_usd": self.limit,
            }
            _stop_here(control)
        return control


class MetricsLog(TrainerCallback):
    """Append each logged step (loss, lr, tokens/s, ...) to run_dir/metrics.jsonl and print one line."""

    def __init__(self, run_dir: Path, segment: int) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.segment = segment
        self.t_begin = 0.0
        self.tokens_begin = 0
        self._t = 0.0
        self._tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.t_begin = self._t = time.monotonic()
        self.tokens_begin = self._tokens = state.num_input_tokens_seen
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return control
        now, tokens = time.monotonic(), state.num_input_tokens_seen
        dt = max(now - self._t, 1e-9)
        row = {
            "step": state.global_step,
            "loss": logs["loss"],
            "lr": logs.get("learning_rate"),
            "tokens_per_s": (tokens - self._tokens) / dt,
            "tokens_seen": tokens,
            "segment": self.segment,
            "time": time.time(),
        }
        row.update({k: v for k, v in logs.items() if k not in row and k != "learning_rate" and _number(v)})
        self._t, self._tokens = now, tokens
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"step {state.global_step}/{state.max_steps} loss {row['loss']:.4f} lr {row['lr'] or 0:.2e} "
            f"tok/s {row['tokens_per_s']:.0f}",
            flush=True,
        )
        return control


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class KillAtStep(TrainerCallback):
    """Fault injection for tests (FTLAUNCH_FAULT_KILL_AT_STEP=N): SIGKILL this process after step N, with no
    cleanup at all, like a node failure."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
        return control


class TrackingSync(TrainerCallback):
    """Keep MLflow's training curves live: every `every_s` seconds (and at each checkpoint) rank 0 starts
    `python -m ftlaunch.tracking RUN_DIR` in the background, which pushes the new metrics.jsonl lines. Training
    never waits for MLflow: a sync still running is left alone, a failed one backs off, and the files keep
    everything for the sync at job end. (The recipe imports only ftlaunch.contract; MLflow is the tracking
    layer's, in its own process.)"""

    def __init__(self, run_dir: Path, every_s: float = 30.0, backoff_s: float = 120.0) -> None:
        self.run_dir, self.every_s, self.backoff_s = run_dir, every_s, backoff_s
        self._next = time.monotonic() + every_s
        self._child: subprocess.Popen | None = None

    def _maybe(self, state, force: bool = False) -> None:
        if not state.is_world_process_zero or not (self.run_dir / "mlflow.json").exists():
            return
        now = time.monotonic()
        if self._child is not None:
            rc = self._child.poll()
            if rc is None:
                return  # the last sync is still talking to the server
            self._child = None
            if rc != 0:
                self._next = max(self._next, now + self.backoff_s)
        if not force and now < self._next:
            return
        self._child = subprocess.Popen(
            [sys.executable, "-m", "ftlaunch.tracking", str(self.run_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._next = now + self.every_s

    def on_log(self, args, state, control, **kwargs):
        self._maybe(state)
        return control

    def on_save(self, args, state, control, **kwargs):
        self._maybe(state, force=True)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        # let a running sync finish (bounded), so it does not outlive the job; the final sync is the launcher's
        if self._child is not None:
            try:
                self._child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._child.kill()
        return control
