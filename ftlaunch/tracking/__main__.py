"""`python -m ftlaunch.tracking RUN_DIR...`: bring MLflow up to date with run folders (the batch script runs it
at the end of a job, the recipe in the background while it trains). Exit 1 when a store was not reachable."""

from __future__ import annotations

import sys

from ftlaunch.tracking.mlflow_run import sync


def main(argv: list[str] | None = None) -> int:
    dirs = argv if argv is not None else sys.argv[1:]
    if all([sync(d) for d in dirs]):
        return 0
    print("warning: MLflow not reachable; run folders keep the metrics, sync again later", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
