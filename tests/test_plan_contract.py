"""plan.json is the one contract: everything the run needs is in it, both sides read it the same way, and
nothing falls back silently to a default that was never chosen."""

import json
from dataclasses import replace

import pytest

from ftlaunch.config.build import catalog_gpu
from ftlaunch.contract.errors import ConfigError
from ftlaunch.contract.plan import ClusterRef, TrackingRef, plan_from_dict, read_plan
from ftlaunch.forecast.predict import predict
from ftlaunch.forecast.setup import Setup
from ftlaunch.planning.assemble import to_plan
from ftlaunch.planning.planner import choose
from tests.conftest import load, make_job, run_launch


@pytest.mark.parametrize(
    "kw",
    [
        dict(model="llama-3-8b", cluster="cloud", budget=500),
        dict(model="mistral-7b", data="ultrafeedback", budget=1000),
        dict(
            model="llama-3-70b", cluster="slurm-a100", method="full", zero=3, offload="optimizer", n_gpus=16
        ),
        dict(model="tiny", data="sample", cluster="local", budget=5),
    ],
)
def test_setup_from_plan_is_the_setup_that_was_planned(kw):
    job = make_job(**kw)
    r = choose(job)
    plan = to_plan(job, r, "/tmp/x")
    assert Setup.from_plan(plan) == r.chosen.setup
    # and the fixed-plan forecast agrees with the planner's own numbers for it
    assert predict(plan, catalog_gpu(plan.resources.gpu))["peak_mem_gib"] == pytest.approx(
        r.chosen.peak_gib, rel=1e-9
    )


def test_forecast_refuses_a_gpu_it_does_not_know():
    job = make_job(budget=500)
    plan = to_plan(job, choose(job), "/tmp/x")
    bench = replace(plan, resources=replace(plan.resources, gpu="bench"))  # what gpu_validation used to write
    with pytest.raises(ConfigError, match="'bench' is not in the GPU catalog"):
        predict(bench, catalog_gpu(bench.resources.gpu))


def test_cluster_gpu_flag_travels_from_config_to_plan():
    job = make_job(cluster={**load("cluster", "slurm-a100"), "gpu_flag": "gpus-per-node"}, budget=500)
    assert to_plan(job, choose(job), "/tmp/x").cluster.gpu_flag == "gpus-per-node"
    with pytest.raises(ConfigError, match="gpu_flag"):
        make_job(cluster={**load("cluster", "slurm-a100"), "gpu_flag": "gpus"})


def test_cost_cap_and_tracking_are_in_the_written_plan(tmp_path):
    r = run_launch("+budget=5", "cost_cap=0.5", "tracking.experiment=mine", "dry_run=true", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (path,) = tmp_path.glob("runs/*/plan.json")
    p = read_plan(path)
    assert p.cost_cap_usd == 0.5
    assert p.tracking == TrackingRef(
        enabled=True, uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="mine"
    )
    assert isinstance(p.cluster, ClusterRef) and p.cluster.executor == "local"
    r = run_launch("+budget=5", "tracking.enabled=false", "dry_run=true", "output_root=off", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (path,) = tmp_path.glob("off/*/plan.json")
    assert read_plan(path).tracking == TrackingRef(enabled=False, uri=None, experiment="ftlaunch")


def test_plan_reader_is_tolerant_of_older_plans_and_explicit_about_unknown_fields():
    job = make_job(budget=500)
    d = json.loads(json.dumps(to_plan(job, choose(job), "/tmp/x").to_dict()))
    old = {k: v for k, v in d.items() if k not in ("cost_cap_usd", "tracking")}
    old["cluster"] = {k: v for k, v in d["cluster"].items() if k != "gpu_flag"}
    p = plan_from_dict(old)  # a plan written before these fields existed
    assert p.cost_cap_usd is None and p.tracking == TrackingRef() and p.cluster.gpu_flag == "gres"
    with pytest.raises(ValueError, match="plan.cluster has unknown field"):
        plan_from_dict({**d, "cluster": {**d["cluster"], "gpu_flags": "x"}})
    with pytest.raises(ValueError, match="plan.training"):
        plan_from_dict({**d, "training": {k: v for k, v in d["training"].items() if k != "seq_len"}})
