"""Lines meant for a person: the recipe marks them with MARK (`say`), and the launcher shows only those in
quiet mode; everything else goes to the run's log. `launch -v` (FTLAUNCH_VERBOSE=1) shows everything."""

from __future__ import annotations

import os
import sys

MARK = "[ftlaunch] "
VERBOSE_ENV = "FTLAUNCH_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def say(msg: str, err: bool = False) -> None:
    """A line for the person running the job (shown by the launcher in quiet mode)."""
    print(MARK + msg, file=sys.stderr if err else sys.stdout, flush=True)
