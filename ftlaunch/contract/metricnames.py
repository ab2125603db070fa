"""The names ftlaunch gives what it logs to MLflow: one place for the login side (tracking, report, outcome)
and the compute side (which logs through ftlaunch.tracking.mlflow_run.sync). Torch-free, no I/O.

MLflow's UI sorts params and metrics by name and groups charts by the part before the first '/', so each
forecast quantity is a prefix and its forecast, measurement and error sit together:

    hours/actual  hours/error_pct  hours/error_ratio  hours/predicted  hours/predicted_paired

`predicted` is the plan's forecast; `predicted_paired` the part of it the actual measures (ftlaunch/forecast/compare.py:
equal to `predicted` except GPU memory, where torch's allocated peak sees no CUDA context or allocator
slack); errors compare the actual with `predicted_paired`. The plan's choices are params `plan/<name>`, the
training curve `train/<name>` (loss, lr, grad_norm, tokens_per_s, ...), the run's other measured numbers
`run/<name>` (steps, wall_s, train_s, final_loss, ...; after the quantities in the UI's sorted chart
sections), system metrics MLflow's own `system/<name>`.

Runs logged before this layout used flat names (predicted_hours, actual_hours, paired_predicted_hours,
error_pct_hours, actual_train_s, params method/gpu/..., training curve loss/lr): `get` reads the new name
and falls back to the old one, so existing stores still report and calibrate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

# Compared with an actual (ftlaunch/forecast/compare.py pairs), in the order tables show them: what it cost and
# how long it took first.
COMPARED = ("cost_usd", "hours", "tokens_per_s_per_gpu", "peak_mem_gib")
FORECAST = (*COMPARED, "gpu_hours", "tokens_total")  # logged as <q>/predicted at launch

PLAN, TRAIN, RUN = "plan/", "train/", "run/"
PREDICTED, PAIRED, MEASURED = "predicted", "predicted_paired", "actual"
ERROR_PCT, ERROR_RATIO = "error_pct", "error_ratio"
# an out-of-memory job (ftlaunch/cluster/outcome.py): what the plan said, and where it ran out
OOM_PREDICTED, OOM_RAN_OUT = "peak_mem_gib/oom_predicted", "peak_mem_gib/oom_ran_out_at"


def predicted(q: str) -> str:
    return f"{q}/{PREDICTED}"


def paired(q: str) -> str:
    return f"{q}/{PAIRED}"


def actual(q: str) -> str:
    """A forecast quantity's measurement (<q>/actual); any other measured number goes under run/."""
    return f"{q}/{MEASURED}" if q in FORECAST else RUN + q


def error_pct(q: str) -> str:
    return f"{q}/{ERROR_PCT}"


def error_ratio(q: str) -> str:
    return f"{q}/{ERROR_RATIO}"


def param(name: str) -> str:
    return PLAN + name


def train(name: str) -> str:
    return TRAIN + name


_OLD_SUFFIX = {PREDICTED: "predicted_", PAIRED: "paired_predicted_", MEASURED: "actual_",
               ERROR_PCT: "error_pct_", ERROR_RATIO: "error_ratio_"}  # fmt: skip
_OLD_EXACT = {OOM_PREDICTED: "oom_predicted_peak_mem_gib", OOM_RAN_OUT: "oom_ran_out_at_gib"}


def legacy(name: str) -> str:
    """The flat name an older ftlaunch logged the same thing under (hours/actual -> actual_hours,
    plan/method -> method, train/loss -> loss)."""
    if name in _OLD_EXACT:
        return _OLD_EXACT[name]
    for prefix, old in ((PLAN, ""), (TRAIN, ""), (RUN, "actual_")):
        if name.startswith(prefix):
            return old + name[len(prefix) :]
    q, _, kind = name.partition("/")
    return _OLD_SUFFIX[kind] + q if kind in _OLD_SUFFIX else name


V = TypeVar("V")


def get(logged: Mapping[str, V], name: str) -> V | None:
    """A run's metric or param by its current name, else by the name older versions logged it under."""
    if name in logged:
        return logged[name]
    return logged.get(legacy(name))
