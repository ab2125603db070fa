"""`launch`: Hydra app. Config -> plan (printed, written as plan.json) -> run it (unless dry_run=true).

Bad input ends with one line on stderr and exit code 2; nothing is written before the plan is sound.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from ftlaunch.config.catalog import CONF_PACKAGE, GROUPS, known
from ftlaunch.contract.errors import EXIT_BAD_INPUT, ConfigError
from ftlaunch.contract.say import verbose

_exit_code = 0
_task_started = False
_sweep_id: str | None = None  # set for a -m sweep: each of its run folders records it (`launch list` groups)


_printed: set[str] = set()


def _fail(msg: str) -> None:
    global _exit_code
    if msg not in _printed:  # the jobs of a -m sweep often fail alike (e.g. no budget): say it once
        _printed.add(msg)
        print(f"error: {msg}", file=sys.stderr, flush=True)
    _exit_code = max(_exit_code, EXIT_BAD_INPUT)


def _top_level_keys() -> set[str]:
    """config.yaml's top-level settings, from the rule table (tests/test_validate.py keeps both in step)."""
    from ftlaunch.config.validate import APPENDED, RULES

    return {k.split(".")[0] for k in RULES} - set(GROUPS) - set(APPENDED)


def check_overrides(argv: list[str]) -> None:
    """Catch the common mistakes before Hydra does, with a one-line fix instead of Hydra's message."""
    from ftlaunch.config import validate

    top = None
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        plain = key.lstrip("+~")
        if plain in GROUPS and not key.startswith("~"):
            names = known(plain)
            for v in value.split(","):  # a -m sweep lists several
                if v not in names:
                    own = (
                        " or your own: model.path=/abs/model_dir or model=hf:Org/Name"
                        if plain == "model"
                        else ""
                    )
                    raise ConfigError(
                        f"unknown {plain} {v!r}: known are {', '.join(k for k in names if k != 'auto') or '-'}"
                        f" (or add ftlaunch/conf/{plain}/{v}.yaml){own}"
                    )
        elif plain.startswith("hydra"):
            continue
        elif key.startswith("+") or "." in plain:
            validate.check_key(plain, appended=key.startswith("+"))  # did you mean ...?
        else:
            top = top or _top_level_keys()
            if plain not in top:
                if plain == "budget":
                    raise ConfigError(f"budget is not set in the config: append it with +{arg}")
                near = validate.suggest(plain)
                fix = f"known are {', '.join(sorted(top))}"
                raise ConfigError(
                    f"unknown setting {plain!r}: {validate.did_you_mean(near) if near else fix}"
                )


def plan_and_run(cfg) -> None:
    """The Hydra task: one plan (one job of a -m sweep)."""
    global _task_started
    _task_started = True
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        try:
            d = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as e:
            first = str(e).splitlines()[0]
            key = getattr(e, "full_key", None)
            if "Missing mandatory value" in first and key:
                raise ConfigError(f"{key} must be set: add {key}=... to the command line") from None
            raise ConfigError(f"config does not resolve: {first}") from None
        _plan_and_run(d)
    except ConfigError as e:
        _fail(str(e))


def _plan_and_run(d: dict) -> None:
    global _exit_code
    from rich.console import Console

    from ftlaunch.config import validate
    from ftlaunch.config.build import job_from_config
    from ftlaunch.contract.plan import atomic_write_text, write_plan
    from ftlaunch.contract.rundir import new_run_dir
    from ftlaunch.planning.assemble import to_plan
    from ftlaunch.planning.planner import choose
    from ftlaunch.planning.render import render

    d = validate.check(d)  # every setting's type and range; a real run needs a budget (or an opt-out)
    if (d.get("cluster") or {}).get("name") == "auto":  # cluster=auto: ask the running Slurm
        from ftlaunch.cluster.clusterconf import resolve_auto

        d["cluster"] = resolve_auto(d["cluster"])
    job = job_from_config(d)
    budget_note = None
    if str(d.get("budget_unit") or "usd") != "usd":  # GPU-hours, capped by the Slurm account's allocation
        from ftlaunch.cluster.gpuhours import apply as in_gpu_hours

        job, budget_note = in_gpu_hours(job, d)
    if d.get("calibrate"):
        from ftlaunch.planning.calibration import apply_calibration

        job = apply_calibration(job, d)
    result = choose(job)
    probe = Console()
    console = Console(width=probe.width if probe.is_terminal else 140, highlight=False)
    if budget_note:
        console.print(budget_note)
    if result.chosen is not None and job.cluster.gres:
        from ftlaunch.run.execute import pick_executor

        if pick_executor(str(d.get("executor") or "auto"), job.cluster.executor) == "slurm":
            from ftlaunch.cluster.queueplan import plan_for_queue  # discovered Slurm cluster: ask its queue

            result = plan_for_queue(job, result, console)
    if result.chosen is None:
        render(result, None, job.budget, int(d.get("show") or 0), console)
        raise ConfigError(result.reason)

    from ftlaunch.tracking.mlflow_run import settings

    tracking = settings(d.get("tracking") or {})  # URI checked before anything is written
    if not d.get("dry_run"):
        from ftlaunch.run.execute import pick_executor

        if pick_executor(str(d.get("executor") or "auto"), job.cluster.executor) == "slurm":
            from ftlaunch.cluster import slurm

            slurm.preflight(job.cluster.partition)
    run_dir = new_run_dir(d.get("output_root") or "runs", job.job_name)
    plan = to_plan(job, result, str(run_dir), tracking)
    render(result, plan, job.budget, int(d.get("show") or 0), console)
    import yaml

    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(redact(d), sort_keys=False))
    if _sweep_id:
        atomic_write_text(run_dir / "sweep", _sweep_id + "\n")
    write_plan(plan, run_dir / "plan.json")
    console.print(f"plan written to [bold]{run_dir / 'plan.json'}[/bold]")
    if d.get("dry_run"):
        return
    rc = execute(plan, run_dir, str(d.get("executor") or "auto"))
    if rc:
        _exit_code = max(_exit_code, rc)


def execute(plan, run_dir: Path, executor: str) -> int:
    """Run the written plan and track it: the MLflow run is opened before the job starts, the job runs here
    or is submitted to Slurm (ftlaunch/run/execute.py), and a local run ends with predicted vs actual.
    Everything the run needs comes from the plan (cost cap, tracking); the config dict is not consulted."""
    from ftlaunch.run import execute as run
    from ftlaunch.run.progress import route_logs
    from ftlaunch.tracking import mlflow_run as tracking

    kind = run.pick_executor(executor, plan.cluster.executor)
    if kind == "local" and not verbose():
        route_logs(run_dir / "train.log")
    env = {"FTLAUNCH_RUN_DIR": str(run_dir)}
    trk = plan.tracking
    uri = None
    if trk.enabled:
        uri = tracking.check_uri(trk.uri or tracking.default_uri())
        env |= {"MLFLOW_TRACKING_URI": uri, **tracking.CLIENT_ENV}
    if uri:
        tracking.open_run(plan, uri, trk.experiment, {"executor": kind})
    if kind == "slurm":
        try:
            job_id = run.submit_slurm(plan, env)
        except ConfigError:
            tracking.delete_run(
                run_dir
            )  # sbatch refused it: no run folder, no MLflow run (the error says why)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        if uri:
            tracking.tag(run_dir, "slurm_job_id", job_id)
        print(f"submitted Slurm job {job_id}; output in {run_dir}/slurm-{job_id}.out")
        return 0
    rc = run.run_local(plan, env)
    if uri and not tracking.sync(run_dir):
        print(
            f"warning: MLflow not reachable; metrics kept in {run_dir}, run `launch-report --sync {run_dir}`"
        )
    if (run_dir / "actuals.json").exists():
        from ftlaunch.tracking.summary import show

        show(run_dir)
    if rc == 2:
        return 2  # the recipe already printed the one-line reason (bad data, ...)
    if rc != 0:
        print(f"error: training exited with code {rc}; see {run_dir / 'train.log'}", file=sys.stderr)
        return 1
    return 0


_SECRET_KEY = re.compile(r"(token|secret|password|passwd|api_key|apikey|credential)", re.I)


def redact(obj):
    """Config as written to disk: values under secret-looking keys are replaced."""
    if isinstance(obj, dict):
        return {k: ("***" if _SECRET_KEY.search(str(k)) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in ("status", "list", "logs", "cancel"):  # job lifecycle, not a plan
        from ftlaunch.cli.jobs import main as jobs_main

        sys.exit(jobs_main(sys.argv[1:]))
    from ftlaunch.config.modelconfig import rewrite_args

    plain = _take_verbose(sys.argv[1:])
    try:
        argv = rewrite_args(plain)
        check_overrides(argv)
        if "-m" in argv or "--multirun" in argv:
            from ftlaunch.config.validate import check_sweep

            check_sweep(argv)  # every swept value, before the first plan writes anything
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    sys.argv = [sys.argv[0], *argv]  # hydra.main below reads sys.argv: the rewritten overrides, no -v

    if not any(a.startswith("-") for a in argv):
        # One plan: compose the config with Hydra's Compose API (one composition, no run machinery), which
        # keeps the login node fast; sweeps (-m) and Hydra's own flags go through hydra.main below.
        sys.exit(_single(argv))

    import hydra

    global _sweep_id
    if "-m" in argv or "--multirun" in argv:
        import secrets
        from datetime import datetime

        _sweep_id = f"sweep-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    app = hydra.main(config_path=f"pkg://{CONF_PACKAGE}", config_name="config", version_base="1.3")(
        plan_and_run
    )
    real_stderr, held = sys.stderr, _HeldStderr(sys.stderr)
    sys.stderr = held
    try:
        app()
    except SystemExit as e:
        # Hydra reports its own config errors (bad override syntax, unknown nested key) over several lines
        # with exit 1; squeeze them into our one line and exit 2.
        if e.code not in (0, None) and not _task_started:
            sys.stderr = real_stderr
            print(f"error: {held.one_line()}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        raise
    finally:
        sys.stderr = real_stderr
    sys.exit(_exit_code)


def _take_verbose(argv: list[str]) -> list[str]:
    """`-v`/`--verbose` is ours (Hydra has none): show every line the job prints, not only ours
    (ftlaunch/run/progress.py). Taken out before Hydra sees argv; the recipe learns it from the environment."""
    import os

    rest = [a for a in argv if a not in ("-v", "--verbose")]
    if len(rest) != len(argv):
        os.environ["FTLAUNCH_VERBOSE"] = "1"
    return rest


def _single(argv: list[str]) -> int:
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module(config_module=CONF_PACKAGE, version_base="1.3"):
            cfg = compose(config_name="config", overrides=argv)
    except (HydraException, OmegaConfBaseException) as e:
        msg = " ".join(ln.strip() for ln in str(e).splitlines()[:2] if ln.strip())
        if "Lexer" in msg or "no viable alternative" in msg:
            msg += " (quote values with spaces or ;: key='a b'; grammar: hydra.cc override_grammar/basic)"
        print(f"error: {msg or type(e).__name__}", file=sys.stderr)
        return EXIT_BAD_INPUT
    plan_and_run(cfg)
    return _exit_code


class _HeldStderr:
    """Holds what is written to stderr until the first plan starts (Hydra's config errors), then passes through."""

    def __init__(self, real):
        self.real, self.buf = real, []

    def write(self, text: str) -> int:
        if _task_started:
            return self.real.write(text)
        self.buf.append(text)
        return len(text)

    def flush(self) -> None:
        self.real.flush()

    def one_line(self) -> str:
        lines = [ln.strip() for ln in "".join(self.buf).splitlines() if ln.strip()]
        lines = [
            ln
            for ln in lines
            if "HYDRA_FULL_ERROR" not in ln and not ln.startswith(("full_key", "object_type"))
        ]
        return " ".join(lines[:2]) or "invalid command line"

    def __getattr__(self, name):
        return getattr(self.real, name)


if __name__ == "__main__":
    main()
