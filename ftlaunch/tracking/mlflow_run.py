"""MLflow: the plan's forecast beside the job's actuals, in one run per launch.

Files in the run folder are the source of truth (plan.json, metrics.jsonl, actuals.json, written by
the recipe); MLflow is kept in step with them by `sync`, which is idempotent and remembers how far it
got in run_dir/mlflow.json. So a tracking server that is down or hangs costs nothing: training goes on
(short timeouts), the files keep everything, and the next sync (next checkpoint, job end, or
`launch-report --sync`) catches up. mlflow is imported lazily: planning never loads it.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from ftlaunch.contract import metricnames as names
from ftlaunch.contract.errors import ConfigError
from ftlaunch.contract.plan import Plan, TrackingRef, atomic_write_text, read_plan
from ftlaunch.forecast import compare

STATE_FILE = "mlflow.json"
# Bounded client behaviour: 0 retries, 5 s per request (the defaults retry for ~4 minutes, docs/stack-facts.md).
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
_URI = re.compile(
    r"^(sqlite:///.+|https?://[A-Za-z0-9.\-]+(:\d{1,5})?(/.*)?|file:///.+|postgresql://.+|mysql://.+|databricks.*)$"
)
DESCRIPTION = "mlflow.note.content"  # the run page's Description, markdown
EXPERIMENT_KIND, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def default_uri() -> str:
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_uri(uri: str) -> str:
    if not _URI.match(uri):
        raise ConfigError(
            f"tracking.uri={uri!r} is not a tracking URI MLflow understands: use sqlite:////abs/path/mlflow.db "
            "or http://host:port"
        )
    return uri


def settings(tcfg: dict[str, Any]) -> TrackingRef:
    """The config's tracking section -> what plan.json carries, the URI resolved and checked now."""
    enabled = bool(tcfg.get("enabled", True))
    uri = check_uri(str(tcfg.get("uri") or default_uri())) if enabled else None
    return TrackingRef(enabled=enabled, uri=uri, experiment=str(tcfg.get("experiment") or "ftlaunch"))


def client(uri: str):
    for k, v in CLIENT_ENV.items():
        os.environ.setdefault(k, v)
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///"):
        # Two launches at once may both find no database and both run MLflow's schema migration: the
        # first one to take this lock creates it, the other waits and finds it ready.
        import fcntl

        db = Path(uri[len("sqlite:///") :])
        db.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{db}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            c = MlflowClient(tracking_uri=uri)
            c.search_experiments(max_results=1)  # creates and migrates the store under the lock
            return c
    return MlflowClient(tracking_uri=uri)


def _state(run_dir: Path) -> dict[str, Any]:
    f = run_dir / STATE_FILE
    return json.loads(f.read_text()) if f.exists() else {}


def _save_state(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_text(run_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """HEAD of the git repository holding cwd (the project being launched), or None outside one."""
    try:
        p = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = p.stdout.strip()
    return sha if p.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", sha) else None


def _git_tags(sha: str | None) -> dict[str, str]:
    # mlflow.source.git.commit is what the MLflow UI shows as the run's commit
    return {"git_commit": sha, "mlflow.source.git.commit": sha} if sha else {}


def plan_params(plan: Plan) -> dict[str, str]:
    """The plan's choices as MLflow params, each under plan/ (ftlaunch/contract/metricnames.py)."""
    t, r = plan.training, plan.resources
    flat = {
        "model": plan.model.name,
        "data": plan.data.name,
        "method": t.method,
        "objective": t.objective,
        "gpu": r.gpu,
        "n_gpus": str(r.n_gpus),
        "nodes": str(r.nodes),
        "zero_stage": str(r.zero_stage),
        "offload_optimizer": str(r.offload_optimizer),
        "offload_params": str(r.offload_params),
        "seq_len": str(t.seq_len),
        "micro_batch": str(t.micro_batch),
        "grad_accum": str(t.grad_accum),
        "global_batch": str(t.global_batch),
        "grad_ckpt": str(t.grad_ckpt),
        "max_steps": str(t.max_steps),
        "learning_rate": str(t.learning_rate),
        "lora_r": str(t.lora_r),
        "budget_usd": str(plan.budget_usd),
        "price_per_gpu_hour": str(r.price_per_gpu_hour),
    }
    return {names.param(k): v for k, v in flat.items()}


def open_run(plan: Plan, uri: str, experiment: str, tags: dict[str, str] | None = None) -> str | None:
    """Create the MLflow run for a launch (params, predictions, tags, artifacts). Returns its id, or None
    when the tracking store cannot be reached (the job still runs; sync creates the run later)."""
    run_dir = Path(plan.run_dir)
    state = {"uri": uri, "experiment": experiment, "run_id": None, "metrics_synced": 0, "finished": False,
             "git_commit": git_commit()}  # fmt: skip
    _save_state(run_dir, state)
    try:
        state["run_id"], state["experiment_id"] = _create(
            plan, uri, experiment, {**_git_tags(state["git_commit"]), **(tags or {})}
        )
    except Exception as e:  # noqa: BLE001 - any tracking failure must not stop the launch
        print(
            f"warning: MLflow at {uri} not reachable ({type(e).__name__}); metrics stay in {run_dir} until synced"
        )
        return None
    _save_state(run_dir, state)
    return state["run_id"]


def experiment_id(c, name: str) -> str:
    """The experiment's id, created if missing, marked as model training so the MLflow UI does not file it
    under GenAI (mlflow.experimentKind; the 3.17 UI also needs ?workflowType=machine_learning in the URL,
    see ftlaunch/tracking/summary.py)."""
    exp = c.get_experiment_by_name(name)
    if exp is None:
        return c.create_experiment(name, tags={EXPERIMENT_KIND: TRAINING_KIND})
    if exp.tags.get(EXPERIMENT_KIND) != TRAINING_KIND:
        c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, TRAINING_KIND)
    return exp.experiment_id


def _create(plan: Plan, uri: str, experiment: str, tags: dict[str, str]) -> tuple[str, str]:
    """(run id, experiment id) of a new run holding the plan."""
    from mlflow.entities import Metric, Param, RunTag

    from ftlaunch.tracking.summary import plan_line, summary_markdown

    c = client(uri)
    exp_id = experiment_id(c, experiment)
    base_tags = {"ftlaunch.run_dir": plan.run_dir, "user": _user(), "cluster": plan.cluster.name,
                 "ftlaunch.plan": plan_line(plan), DESCRIPTION: summary_markdown(plan, None)}  # fmt: skip
    run = c.create_run(exp_id, run_name=Path(plan.run_dir).name, tags={**base_tags, **tags})
    now = int(time.time() * 1000)
    fc = plan.forecast
    metrics = [Metric(names.predicted(k), float(getattr(fc, k)), now, 0) for k in names.FORECAST]
    params = [Param(k, v) for k, v in plan_params(plan).items()]
    c.log_batch(
        run.info.run_id, metrics=metrics, params=params, tags=[RunTag("ftlaunch.status", "submitted")]
    )
    for name in ("plan.json", "config.yaml", "job.sbatch"):
        f = Path(plan.run_dir) / name
        if f.exists():
            c.log_artifact(run.info.run_id, str(f))
    return run.info.run_id, exp_id


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"


def tag(run_dir: Path, key: str, value: str) -> bool:
    s = _state(run_dir)
    if not s.get("run_id"):
        return False
    try:
        client(s["uri"]).set_tag(s["run_id"], key, value)
        return True
    except Exception:  # noqa: BLE001
        return False


def delete_run(run_dir: Path) -> None:
    """The run folder's MLflow run, deleted (the job it tracked never started); best effort."""
    try:
        s = _state(Path(run_dir))
        if s.get("run_id"):
            client(s["uri"]).delete_run(s["run_id"])
    except Exception:  # noqa: BLE001 - the store may be down or the state unreadable; the folder goes anyway
        pass


def sync(run_dir: str | os.PathLike[str]) -> bool:
    """Bring MLflow up to date with the run folder. True when fully synced; False leaves it for later.
    One sync at a time per run folder (the recipe's background syncs and the launcher's final one)."""
    import fcntl

    run_dir = Path(run_dir)
    if not (run_dir / STATE_FILE).exists():
        return False
    with open(run_dir / ".mlflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _sync(run_dir)


def _sync(run_dir: Path) -> bool:
    s = _state(run_dir)
    if not s or s.get("finished"):
        return bool(s)
    try:
        c = client(s["uri"])
        if not s.get("run_id"):
            plan = read_plan(run_dir / "plan.json")
            s["run_id"], s["experiment_id"] = _create(
                plan, s["uri"], s["experiment"], _git_tags(s.get("git_commit"))
            )
            _save_state(run_dir, s)
        _sync_metrics(c, run_dir, s)
        actuals = run_dir / "actuals.json"
        if actuals.exists():
            _log_actuals(c, run_dir, s, json.loads(actuals.read_text()))
    except Exception:  # noqa: BLE001 - down, hanging or refusing: try again at the next sync
        return False
    return True


def _sync_metrics(c, run_dir: Path, s: dict[str, Any]) -> None:
    from mlflow.entities import Metric

    f = run_dir / "metrics.jsonl"
    if not f.exists():
        return
    lines = f.read_text().splitlines()
    done = int(s.get("metrics_synced", 0))
    complete = lines if f.read_text().endswith("\n") else lines[:-1]  # never a half-written last line
    batch = []
    for line in complete[done:]:
        row = json.loads(line)
        step, ts = int(row.get("step", 0)), int(float(row.get("time", time.time())) * 1000)
        for k, v in row.items():
            if k not in ("step", "time") and isinstance(v, (int, float)) and not isinstance(v, bool):
                batch.append(Metric(names.train(k), float(v), ts, step))
    for i in range(0, len(batch), 900):  # log_batch takes at most 1000 metrics
        c.log_batch(s["run_id"], metrics=batch[i : i + 900])
    s["metrics_synced"] = len(complete)
    _save_state(run_dir, s)


def _log_actuals(c, run_dir: Path, s: dict[str, Any], actuals: dict[str, Any]) -> None:
    from mlflow.entities import Metric, RunTag

    from ftlaunch.tracking.summary import summary_markdown

    plan = read_plan(run_dir / "plan.json")
    now = int(time.time() * 1000)
    vals = {
        names.actual(k): v
        for k, v in actuals.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    pairs = compare.pairs(plan, actuals)
    vals |= {names.actual(k): a for k, (a, _) in pairs.items()}
    vals |= {names.paired(k): p for k, (_, p) in pairs.items()}  # what launch-report compares with
    vals |= compare.errors(plan, actuals)
    stop = str(actuals.get("stop_reason", "completed"))
    c.log_batch(
        s["run_id"],
        metrics=[Metric(k, float(v), now, 0) for k, v in sorted(vals.items())],  # grouped by prefix
        tags=[
            RunTag("ftlaunch.status", stop),
            RunTag("ftlaunch.device", str(actuals.get("device", ""))),
            RunTag(DESCRIPTION, summary_markdown(plan, actuals)),
        ],  # fmt: skip
    )
    c.log_artifact(s["run_id"], str(run_dir / "actuals.json"))
    if stop in ("completed", "budget"):
        c.set_terminated(s["run_id"], status="FINISHED")
        s["finished"] = True
    _save_state(run_dir, s)
