"""Stop requests that arrive as signals. Stdlib only: installed first thing, before the slow imports.

Slurm's `--signal=B:USR1@N` and `scancel` (SIGTERM) reach the batch shell, which forwards them to the recipe
(torchrun does not forward USR1, so a shell trap writes run_dir/STOP instead). The handler only records the
request; ftlaunch.recipes.callbacks.GracefulStop acts on it at the next optimizer-step boundary.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class StopRequest:
    def __init__(self) -> None:
        self.reason: str | None = None

    def install(self) -> StopRequest:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        self.reason = f"signal {signal.Signals(signum).name}"
