"""`launch-report`: predicted vs actual per run, a PNG of it, syncing and calibration.

launch-report                                  # table of the experiment's runs
launch-report --method lora --gpu h100-sxm     # filters
launch-report --plot report.png                # also the predicted-vs-actual plot (logged to MLflow)
launch-report --sync runs/*                    # push run folders MLflow missed (server was down)
launch-report --calibrate                      # fit correction factors for `launch calibrate=true`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftlaunch.contract.errors import EXIT_BAD_INPUT, ConfigError
from ftlaunch.planning import calibration as calibration_file
from ftlaunch.tracking import calibration
from ftlaunch.tracking import mlflow_run as tracking
from ftlaunch.tracking.report import calibration_records, fetch, log_plot, plot, table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="launch-report", description=__doc__.splitlines()[0])
    ap.add_argument("--uri", default=None, help="tracking URI (default sqlite:///<cwd>/mlflow.db)")
    ap.add_argument("--experiment", default="ftlaunch")
    ap.add_argument("--method")
    ap.add_argument("--gpu")
    ap.add_argument("--last", type=int, default=50, help="newest N runs")
    ap.add_argument("--plot", type=Path, help="write the predicted-vs-actual PNG here (and log it to MLflow)")
    ap.add_argument("--sync", nargs="*", type=Path, default=None, help="run folders to sync to MLflow first")
    ap.add_argument("--calibrate", nargs="?", const=Path("runs") / calibration_file.FILE, type=Path,
                    help=f"write correction factors (default runs/{calibration_file.FILE})")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        uri = tracking.check_uri(args.uri or tracking.default_uri())
        for d in args.sync or []:
            if not (d / "plan.json").exists():
                raise ConfigError(f"{d} is not a run folder (no plan.json)")
            print(f"sync {d}: {'ok' if tracking.sync(d) else 'MLflow not reachable, try again later'}")
        rows = fetch(uri, args.experiment, args.method, args.gpu, args.last)
        table(rows)
        if args.plot:
            path = plot(rows, args.plot)
            print(
                f"plot written to {path}; logged to MLflow experiment {log_plot(uri, args.experiment, path)!r}"
            )
        if args.calibrate:
            recs = calibration_records([r for r in rows if r["actual"]["hours"]])
            recs += calibration.oom_records(
                args.calibrate.parent
            )  # jobs that ran out (ftlaunch/cluster/outcome.py)
            data = calibration.fit(recs)
            if not data["factors"]:
                raise ConfigError("no finished run has actuals to calibrate from: run a job to the end first")
            calibration.write(args.calibrate, data)
            for k, f in data["factors"].items():
                fs = ", ".join(f"{n} x{f[n]:.3g}" for n in calibration_file.FACTORS if n in f)
                print(f"calibration {k} (n={f['n']}): {fs}")
            print(f"written to {args.calibrate}; plan with `launch ... calibrate=true`")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
