"""A cluster config (ftlaunch/conf/cluster/*.yaml shape) made from what Slurm reports: `launch cluster=auto` uses it
in memory, `launch-cluster` writes it to ftlaunch/conf/cluster/<ClusterName>.yaml for the user to edit."""

from __future__ import annotations

from typing import Any

from ftlaunch.cluster.discovery import ClusterInfo, Partition, gpu_name
from ftlaunch.contract.errors import ConfigError

# Not visible to Slurm: the fabric between nodes. 100 Gb/s per GPU-node / 8 GPUs; an assumption the written
# YAML flags for editing (ftlaunch/conf/cluster/slurm-a100.yaml documents the same key).
ASSUMED_INTER_NODE_GB_S = 12.5


def gpu_partitions(info: ClusterInfo) -> list[Partition]:
    return [p for p in info.partitions if any(n.n_gpus for n in info.nodes_of(p))]


def pick_partition(info: ClusterInfo, name: str | None) -> Partition:
    if name:
        part = info.partition(name)
    else:
        gp = gpu_partitions(info)
        if not gp:
            raise ConfigError(
                f"Slurm cluster {info.name} has no partition with GPUs (gres gpu): nothing to plan on"
            )
        part = next((p for p in gp if p.default), gp[0])
    if not any(n.n_gpus for n in info.nodes_of(part)):
        others = ", ".join(p.name for p in gpu_partitions(info)) or "none"
        raise ConfigError(
            f"partition {part.name!r} has no GPUs (no gres gpu on {', '.join(part.nodes) or 'any node'}): "
            f"pick a GPU partition with cluster.partition=... (GPU partitions: {others})"
        )
    return part


def cluster_config(
    info: ClusterInfo, partition: str | None = None, mapping: dict[str, str] | None = None
) -> dict[str, Any]:
    """The ftlaunch/conf/cluster dict for one partition: GPU types (catalog names), GPUs/CPUs/memory per node."""
    part = pick_partition(info, partition)
    gres: dict[str, str] = {}
    per_type_nodes: dict[str, int] = {}
    gpn, cpg, mpg = 0, None, None
    for n in info.nodes_of(part):
        for typ, cnt in n.gpus:
            g = gpu_name(typ or "gpu", f"node {n.name} (gres gpu:{typ + ':' if typ else ''}{cnt})", mapping)
            if typ:
                gres[g] = typ
            per_type_nodes[g] = per_type_nodes.get(g, 0) + 1
        if n.n_gpus:
            gpn = max(gpn, n.n_gpus)
            cpg = min(cpg or 10**9, max(1, n.cpus // n.n_gpus))
            mpg = min(mpg or 1e18, round(n.mem_mb / 1024 / n.n_gpus, 1))
    return {
        "name": info.name,
        "executor": "slurm",
        "gpus": sorted(per_type_nodes),
        "gpus_per_node": gpn,
        # the most nodes any one GPU type has here (a plan on a type with fewer is caught by `sbatch --test-only`)
        "max_nodes": max(per_type_nodes.values()),
        "inter_node_gb_s": ASSUMED_INTER_NODE_GB_S,
        "partition": part.name,
        "account": None,
        "qos": None,
        "cpus_per_gpu": cpg,
        "mem_per_gpu_gib": mpg,
        "prices": {},
        "gres": gres,
        "max_time_min": part.max_time_min,
    }


def resolve_auto(cfg: dict[str, Any]) -> dict[str, Any]:
    """`cluster=auto`: discover now; keep what the user set on the command line (partition, account, ...)."""
    from ftlaunch.cluster import discovery as slurminfo

    info = slurminfo.read()
    out = cluster_config(info, cfg.get("partition"), dict(cfg.get("gres_map") or {}))
    for k in ("account", "qos", "prices", "inter_node_gb_s"):
        if cfg.get(k) not in (None, {}, ""):
            out[k] = cfg[k]
    return out


def yaml_text(info: ClusterInfo, cfg: dict[str, Any]) -> str:
    import yaml

    lines = [
        f"# Discovered from Slurm cluster {info.name} by `launch-cluster` (scontrol show node/partition). Edit freely.",
        "# inter_node_gb_s is an assumption (Slurm does not know the fabric): set it to yours.",
    ]
    for g, t in cfg["gres"].items():
        lines.append(
            f"# gres type {t!r} -> GPU type {g} (ftlaunch/cluster/discovery.py GRES_TO_GPU; change gpus: if wrong)"
        )
    lines.append("# partitions:")
    for p in info.partitions:
        gpus = sorted({f"{t or 'gpu'}:{c}" for n in info.nodes_of(p) for t, c in n.gpus})
        limit = "no limit" if p.max_time_min is None else f"MaxTime {p.max_time_min} min"
        lines.append(
            f"#   {p.name}: nodes {','.join(p.nodes) or '-'}; GPUs {' '.join(gpus) or 'none'}; {limit}"
        )
    return "\n".join(lines) + "\n" + yaml.safe_dump(cfg, sort_keys=False)
