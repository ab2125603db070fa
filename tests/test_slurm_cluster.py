"""Discovery against the REAL local Slurm (tests/conftest.py slurm_cluster: n1 gpu:a100:2, n2 gpu:h100:2, c1 no
GPUs; partitions debug, short MaxTime 20, quick MaxTime 2, cpu), and the one-line refusals when Slurm or its answers are wrong."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ftlaunch.cluster import discovery as slurminfo
from ftlaunch.cluster import slurm
from ftlaunch.cluster.clusterconf import cluster_config
from ftlaunch.cluster.queueplan import limit_minutes
from ftlaunch.contract.errors import ConfigError
from tests.conftest import run_launch

LAUNCH_CLUSTER = str(Path(sys.executable).parent / "launch-cluster")


def test_discovery_reads_nodes_gres_partitions_and_limits(slurm_cluster):
    info = slurminfo.read()
    assert info.name == "localci"
    nodes = {n.name: n for n in info.nodes}
    assert (
        nodes["n1"].gpus == (("a100", 2),) and nodes["n2"].gpus == (("h100", 2),) and nodes["c1"].gpus == ()
    )
    assert nodes["n1"].cpus == 4 and nodes["n1"].mem_mb > 1000
    parts = {p.name: p for p in info.partitions}
    assert parts["debug"].default and parts["debug"].max_time_min is None
    assert set(parts["debug"].nodes) == {"n1", "n2"} and parts["cpu"].nodes == ("c1",)
    assert parts["short"].max_time_min == 20 and parts["quick"].max_time_min == 2
    cfg = cluster_config(info)
    assert cfg["gpus"] == ["a100-80gb", "h100-sxm"] and cfg["gres"] == {
        "a100-80gb": "a100",
        "h100-sxm": "h100",
    }
    assert cfg["partition"] == "debug" and cfg["gpus_per_node"] == 2 and cfg["cpus_per_gpu"] == 2
    assert cluster_config(info, "short")["max_time_min"] == 20


def test_launch_cluster_writes_an_editable_yaml_the_planner_accepts(slurm_cluster, tmp_path):
    p = subprocess.run([LAUNCH_CLUSTER, "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "localci.yaml").read_text()
    assert "# gres type 'a100' -> GPU type a100-80gb" in text and "short: nodes n1,n2" in text
    cfg = yaml.safe_load(text)
    assert cfg["gpus"] == ["a100-80gb", "h100-sxm"] and cfg["executor"] == "slurm"
    from ftlaunch.config.build import cluster_spec

    spec = cluster_spec(cfg)
    assert spec.gres == {"a100-80gb": "a100", "h100-sxm": "h100"} and spec.gpus_per_node == 2


def test_cluster_auto_plans_on_discovered_gpus_and_renders_typed_gres(slurm_cluster, tmp_path):
    r = run_launch(
        "cluster=auto", "model=llama-3-8b", "+budget=500", "dry_run=true", cwd=tmp_path, timeout=120
    )
    assert r.returncode == 0, r.stderr
    (plan_file,) = tmp_path.glob("runs/*/plan.json")
    plan = json.loads(plan_file.read_text())
    assert plan["resources"]["gpu"] in ("a100-80gb", "h100-sxm") and plan["cluster"]["partition"] == "debug"
    assert plan["cluster"]["gres"] == {"a100-80gb": "a100", "h100-sxm": "h100"}[plan["resources"]["gpu"]]
    from ftlaunch.cluster.batch import directives
    from ftlaunch.contract.plan import read_plan

    assert f"#SBATCH --gres=gpu:{plan['cluster']['gres']}:" in "\n".join(directives(read_plan(plan_file)))


@pytest.mark.parametrize(
    "args, expect",
    [
        (("cluster.partition=cpu",), "partition 'cpu' has no GPUs"),
        (("cluster.partition=nosuch",), "cluster.partition='nosuch' does not exist"),
        (("+cluster.gres_map.a100=warp-drive",), "'warp-drive' is not a GPU type"),
    ],
)
def test_cluster_auto_bad_input_is_one_line_and_writes_nothing(slurm_cluster, tmp_path, args, expect):
    r = run_launch("cluster=auto", "+budget=500", *args, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and expect in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_unknown_gres_type_says_how_to_map_it():
    """Real scontrol record (22.05 -o format) of a node whose gres type the catalog does not know."""
    rec = ("NodeName=g7 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUEfctv=8 CPUTot=8 CPULoad=0.01 "
           "AvailableFeatures=(null) ActiveFeatures=(null) Gres=gpu:mi250x:4(S:0) NodeAddr=10.0.0.7 "
           "NodeHostName=g7 Version=22.05.8 OS=Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 "
           "RealMemory=64000 AllocMem=0 FreeMem=60000 Sockets=8 Boards=1 State=IDLE ThreadsPerCore=1 "
           "Partitions=amd CfgTRES=cpu=8,mem=62.50G,billing=8,gres/gpu=4 AllocTRES=")  # fmt: skip
    (node,) = slurminfo.parse_nodes(rec)
    assert node.gpus == (("mi250x", 4),) and node.cpus == 8 and node.partitions == ("amd",)
    info = slurminfo.ClusterInfo("x", (node,), (slurminfo.Partition("amd", ("g7",), 60, True, "UP"),))
    with pytest.raises(ConfigError, match=r"gres type 'mi250x' on node g7 .*--map mi250x=<GPU type>"):
        cluster_config(info)
    assert cluster_config(info, mapping={"mi250x": "mi300x"})["gpus"] == ["mi300x"]


def test_hanging_slurm_is_one_line_under_the_timeout(slurm_cluster, tmp_path):
    """slurmctld frozen (SIGSTOP): every Slurm command hangs; launch answers within the timeout, exit 2."""
    root = Path(os.environ.get("SLURM_LOCAL_ROOT") or "/tmp/slurm-local")
    pid = int((root / "run" / "slurmctld.pid").read_text())
    env = {"FTLAUNCH_SLURM_TIMEOUT_S": "2"}
    os.kill(pid, signal.SIGSTOP)
    try:
        t = time.time()
        r = run_launch("cluster=auto", "+budget=500", cwd=tmp_path, env=env, timeout=60)
        c = subprocess.run([LAUNCH_CLUSTER, "--out", str(tmp_path / "conf")], capture_output=True, text=True,
                           timeout=60, env={**os.environ, **env})  # fmt: skip
        took = time.time() - t
    finally:
        os.kill(pid, signal.SIGCONT)
    for p in (r, c):
        assert p.returncode == 2 and "Slurm not reachable: scontrol gave no answer in 2 s" in p.stderr, (
            p.stderr
        )
        assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "conf").exists()
    assert took < 30


BIG = (
    "cluster=auto",
    "model=llama-3-8b",
    "data=alpaca",
    "+budget=5000",
    "dry_run=true",
    "goal.optimize=time",
)


def _chosen(tmp_path: Path) -> dict:
    (plan_file,) = tmp_path.glob("runs/*/plan.json")
    return json.loads(plan_file.read_text())


def test_time_goal_minimises_wait_plus_run_from_the_schedulers_estimate(slurm_cluster, tmp_path):
    (tmp_path / "a").mkdir()
    free = run_launch(*BIG, cwd=tmp_path / "a", timeout=120)
    assert free.returncode == 0, free.stderr
    assert _chosen(tmp_path / "a")["resources"]["gpu"] == "h100-sxm"  # fastest when nothing waits
    assert "2 GPUs free, starts now" in free.stdout
    # n2's two H100s taken for a day: Slurm's backfill estimate for an H100 plan is ~1 day out
    block = subprocess.run(["sbatch", "--parsable", "-p", "debug", "-w", "n2", "--gres=gpu:h100:2", "-t", "1-00:00:00", "-o", "/dev/null",
                            "--wrap", "sleep 600"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert block.returncode == 0, block.stderr
    jid = block.stdout.strip()
    try:
        deadline = time.time() + 60
        while slurm.job_state(jid) != "RUNNING" and time.time() < deadline:
            time.sleep(0.5)
        (tmp_path / "b").mkdir()
        busy = run_launch(*BIG, cwd=tmp_path / "b", timeout=120)
    finally:
        subprocess.run(["scancel", jid], timeout=30)
    assert busy.returncode == 0, busy.stderr
    plan = _chosen(tmp_path / "b")
    assert plan["resources"]["gpu"] == "a100-80gb", busy.stdout
    assert "0 GPUs free" in busy.stdout and "queue:" in plan["reason"] and "would start" in plan["reason"]


def test_plan_longer_than_max_time_runs_as_checkpointed_segments(slurm_cluster, tmp_path):
    r = run_launch(*BIG, "cluster.partition=short", "epochs=3", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    plan = _chosen(tmp_path)
    need = limit_minutes(plan["forecast"]["hours"])  # the plan's own time limit, over MaxTime
    assert plan["cluster"]["max_time_min"] == 20 and need > 20
    assert f"segments   {math.ceil(need / 20)} x 20 min (partition MaxTime)" in r.stdout, r.stdout
    from ftlaunch.cluster.batch import directives
    from ftlaunch.contract.plan import read_plan

    (plan_file,) = tmp_path.glob("runs/*/plan.json")
    assert "#SBATCH --time=0-00:20:00" in directives(read_plan(plan_file))


def test_max_time_too_short_for_segments_is_refused(slurm_cluster, tmp_path):
    r = run_launch(*BIG, "cluster.partition=quick", cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "partition MaxTime is 2 min, too short for checkpointed segments" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def _sacctmgr(*args: str) -> None:
    subprocess.run(["sacctmgr", "-i", *args], capture_output=True, text=True, timeout=30)


def test_gpu_hour_budget_is_capped_by_the_accounts_allocation(slurm_cluster, tmp_path):
    """Accounting on (slurmdbd): account ftltest gets GrpTRESMins=gres/gpu=600 (10 GPU-hours)."""
    _sacctmgr("add", "account", "ftltest", "Description=test", "Organization=test")
    _sacctmgr("add", "user", "root", "account=ftltest")
    _sacctmgr("modify", "account", "ftltest", "set", "GrpTRESMins=gres/gpu=600")
    args = ("cluster=auto", "model=llama-3-8b", "data=alpaca", "budget_unit=gpu_hours", "+budget=1000",
            "cluster.account=ftltest", "dry_run=true")  # fmt: skip
    try:
        (tmp_path / "a").mkdir()
        r = run_launch(*args, cwd=tmp_path / "a", timeout=120)
        _sacctmgr("modify", "account", "ftltest", "set", "GrpTRESMins=gres/gpu=0")
        (tmp_path / "b").mkdir()
        gone = run_launch(*args, cwd=tmp_path / "b", timeout=120)
    finally:
        _sacctmgr("delete", "user", "root", "account=ftltest")
        _sacctmgr("delete", "account", "ftltest")
    assert r.returncode == 0, r.stderr
    assert "account ftltest: 10.0 of 10.0 GPU-hours left" in r.stdout
    plan = _chosen(tmp_path / "a")
    assert plan["budget_usd"] == 10.0  # min(1000 asked, 10 left)
    fc = plan["forecast"]
    assert math.isclose(fc["cost_usd"], fc["gpu_hours"], rel_tol=1e-6) and fc["gpu_hours"] <= 10.0
    assert gone.returncode == 2 and "Slurm account ftltest has used its allocation" in gone.stderr, (
        gone.stderr
    )
    assert len(gone.stderr.strip().splitlines()) == 1 and not (tmp_path / "b" / "runs").exists()
