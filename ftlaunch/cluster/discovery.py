"""What a Slurm cluster has, read from `scontrol show node|partition|config` (plain values, no I/O but `read`).

Every command goes through ftlaunch.cluster.slurm.run_slurm (timeout, one-line error). Gres type names ("a100",
"h100_80gb", ...) map to the GPU catalog (ftlaunch/conf/gpu/) through GRES_TO_GPU; an unknown one is one line saying
how to map it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftlaunch.contract.errors import ConfigError

# Gres type (lower-cased, "-" and "_" dropped) -> ftlaunch/conf/gpu name. Sites name types freely (gres.conf Type=);
# these are the spellings seen in Slurm docs and site gres.conf files. A bare "a100" / "h100" is taken as the
# larger SXM part (the common one in Slurm clusters); the written cluster YAML says so, for the user to edit.
GRES_TO_GPU = {
    "a100": "a100-80gb",
    "a10080gb": "a100-80gb",
    "a10080g": "a100-80gb",
    "a100sxm480gb": "a100-80gb",
    "a10040gb": "a100-40gb",
    "a10040g": "a100-40gb",
    "a100sxm440gb": "a100-40gb",
    "h100": "h100-sxm",
    "h10080gb": "h100-sxm",
    "h100sxm": "h100-sxm",
    "h100sxm580gb": "h100-sxm",
    "h100pcie": "h100-pcie",
    "h200": "h200",
    "h200141gb": "h200",
    "a10g": "a10g",
    "a10": "a10g",
    "l4": "l4",
    "l40s": "l40s",
    "v100": "v100-32gb",
    "v10032gb": "v100-32gb",
    "rtx4090": "rtx-4090",
    "4090": "rtx-4090",
    "mi300x": "mi300x",
}


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: tuple[tuple[str, int], ...]  # (gres type or "", count)
    gpus_alloc: int
    state: str
    partitions: tuple[str, ...]

    @property
    def n_gpus(self) -> int:
        return sum(n for _, n in self.gpus)


@dataclass(frozen=True)
class Partition:
    name: str
    nodes: tuple[str, ...]
    max_time_min: int | None  # None: no limit
    default: bool
    state: str


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    nodes: tuple[Node, ...]
    partitions: tuple[Partition, ...]

    def partition(self, name: str | None) -> Partition:
        for p in self.partitions:
            if p.name == name or (name is None and p.default):
                return p
        names = ", ".join(p.name for p in self.partitions)
        if name is None:
            raise ConfigError(
                f"Slurm cluster {self.name} has no default partition: set cluster.partition ({names})"
            )
        raise ConfigError(
            f"cluster.partition={name!r} does not exist on this Slurm (has {names}): set cluster.partition"
        )

    def nodes_of(self, part: Partition) -> list[Node]:
        return [n for n in self.nodes if n.name in part.nodes or part.name in n.partitions]


_KV = re.compile(r"(\S+?)=(.*?)(?=\s+\S+?=|$)")


def parse_kv(line: str) -> dict[str, str]:
    """One `scontrol -o` record: Key=value pairs; values may hold spaces (OS=Linux 6.1 #1 SMP ...)."""
    return {m.group(1): m.group(2).strip() for m in _KV.finditer(line.strip())}


def parse_gres(s: str) -> tuple[tuple[str, int], ...]:
    """'gpu:a100:2(S:0-1),gpu:1,shard:8' -> (('a100', 2), ('', 1)): GPU entries only."""
    out = []
    for item in s.split(","):
        item = re.sub(r"\(.*?\)", "", item).strip()
        parts = item.split(":")
        if not parts or parts[0] != "gpu":
            continue
        if len(parts) == 2:
            typ, cnt = "", parts[1]
        elif len(parts) >= 3:
            typ, cnt = parts[1], parts[2]
        else:
            continue
        m = re.match(r"\d+", cnt)
        if m:
            out.append((typ, int(m.group(0))))
    return tuple(out)


def alloc_gpus(tres: str) -> int:
    """AllocTRES 'cpu=2,mem=1G,gres/gpu=1,gres/gpu:a100=1' -> 1 (the untyped total)."""
    m = re.search(r"(?:^|,)gres/gpu=(\d+)", tres or "")
    return int(m.group(1)) if m else 0


def parse_minutes(s: str) -> int | None:
    """Slurm time limit -> minutes; None when unlimited. Forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM[:SS]."""
    s = (s or "").strip()
    if s.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days = 0
    if "-" in s:
        d, s = s.split("-", 1)
        days = int(d)
        parts = [int(x) for x in s.split(":")]
        h, m, sec = (parts + [0, 0])[:3]
    else:
        parts = [int(x) for x in s.split(":")]
        if len(parts) == 1:
            h, m, sec = 0, parts[0], 0
        elif len(parts) == 2:
            h, m, sec = 0, parts[0], parts[1]
        else:
            h, m, sec = parts[:3]
    return days * 1440 + h * 60 + m + (1 if sec else 0)


def parse_nodes(text: str) -> tuple[Node, ...]:
    nodes = []
    for line in text.splitlines():
        if not line.startswith("NodeName="):
            continue
        d = parse_kv(line)
        nodes.append(Node(
            name=d["NodeName"],
            cpus=int(d.get("CPUTot") or 0),
            mem_mb=int(d.get("RealMemory") or 0),
            gpus=parse_gres(d.get("Gres", "")),
            gpus_alloc=alloc_gpus(d.get("AllocTRES", "")),
            state=d.get("State", "UNKNOWN"),
            partitions=tuple(p for p in d.get("Partitions", "").split(",") if p),
        ))  # fmt: skip
    return tuple(nodes)


def parse_partitions(text: str, hostnames=None) -> tuple[Partition, ...]:
    parts = []
    for line in text.splitlines():
        if not line.startswith("PartitionName="):
            continue
        d = parse_kv(line)
        nodelist = d.get("Nodes", "")
        parts.append(Partition(
            name=d["PartitionName"],
            nodes=tuple(hostnames(nodelist)) if hostnames and nodelist not in ("", "(null)") else (),
            max_time_min=parse_minutes(d.get("MaxTime", "UNLIMITED")),
            default=d.get("Default") == "YES",
            state=d.get("State", "UP"),
        ))  # fmt: skip
    return tuple(parts)


def read() -> ClusterInfo:
    """Ask the running Slurm (three scontrol calls, each under the Slurm timeout)."""
    from ftlaunch.cluster.slurm import run_slurm

    conf = run_slurm(["scontrol", "show", "config"])
    m = re.search(r"^ClusterName\s*=\s*(\S+)", conf, re.M)
    nodes = parse_nodes(run_slurm(["scontrol", "show", "node", "-o"]))
    parts = parse_partitions(run_slurm(["scontrol", "show", "partition", "-o"]))
    # scontrol's node records list their partitions, so no hostlist expansion is needed
    parts = tuple(
        Partition(
            p.name, tuple(n.name for n in nodes if p.name in n.partitions), p.max_time_min, p.default, p.state
        )
        for p in parts
    )
    return ClusterInfo(name=m.group(1) if m else "slurm", nodes=nodes, partitions=parts)


def gpu_name(gres_type: str, where: str, mapping: dict[str, str] | None = None) -> str:
    """Catalog name for a gres type, or one line saying how to map it."""
    from ftlaunch.config.catalog import gpu_catalog

    catalog = gpu_catalog()
    mapping = {k.lower(): v for k, v in (mapping or {}).items()}
    key = gres_type.lower()
    got = mapping.get(key) or GRES_TO_GPU.get(re.sub(r"[-_ ]", "", key))
    if got and got in catalog:
        return got
    if got:
        raise ConfigError(
            f"--map {gres_type}={got}: {got!r} is not a GPU type; known are {', '.join(sorted(catalog))}"
        )
    if not gres_type:
        raise ConfigError(
            f"{where} has GPUs without a type (gres gpu:N): say which with --map gpu=<GPU type> "
            f"(one of {', '.join(sorted(catalog))})"
        )
    raise ConfigError(
        f"gres type {gres_type!r} on {where} is not in the GPU catalog: map it with --map {gres_type}=<GPU type> "
        f"(one of {', '.join(sorted(g for g in catalog if g != 'cpu'))}) or add ftlaunch/conf/gpu/{gres_type}.yaml"
    )


def free_gpus(info: ClusterInfo, part: Partition) -> int:
    """GPUs not allocated right now on the partition's usable nodes."""
    total = 0
    for n in info.nodes_of(part):
        st = n.state.upper()
        if any(bad in st for bad in ("DOWN", "DRAIN", "FAIL", "MAINT", "RESERVED", "NOT_RESPONDING")):
            continue
        total += max(0, n.n_gpus - n.gpus_alloc)
    return total
