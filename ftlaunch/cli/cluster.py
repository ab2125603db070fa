"""`launch-cluster`: a cluster config written from what the running Slurm reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftlaunch.cluster import discovery
from ftlaunch.cluster.clusterconf import cluster_config, yaml_text
from ftlaunch.config.catalog import conf_dir
from ftlaunch.contract.errors import EXIT_BAD_INPUT, ConfigError
from ftlaunch.contract.plan import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    """`launch-cluster`: write ftlaunch/conf/cluster/<ClusterName>.yaml from the running Slurm."""
    ap = argparse.ArgumentParser(prog="launch-cluster", description=main.__doc__)
    ap.add_argument("--partition", help="GPU partition to plan on (default: the default one with GPUs)")
    ap.add_argument("--map", action="append", default=[], metavar="GRES=GPU",
                    help="map a gres type to a GPU type of ftlaunch/conf/gpu, e.g. --map a100_40g=a100-40gb")  # fmt: skip
    ap.add_argument("--out", type=Path, help="folder to write into (default: ftlaunch/conf/cluster)")
    ap.add_argument("--print", action="store_true", help="print the YAML instead of writing it")
    args = ap.parse_args(argv)
    try:
        mapping = {}
        for m in args.map:
            k, sep, v = m.partition("=")
            if not sep or not k or not v:
                raise ConfigError(f"--map {m!r} is not GRES=GPU, e.g. --map a100_40g=a100-40gb")
            mapping[k] = v
        info = discovery.read()
        cfg = cluster_config(info, args.partition, mapping)
        text = yaml_text(info, cfg)
        if args.print:
            print(text, end="")
            return 0
        out = args.out or Path(str(conf_dir().joinpath("cluster")))
        path = out / f"{cfg['name']}.yaml"
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"wrote {path}: {', '.join(cfg['gpus'])} on partition {cfg['partition']}; plan with `launch cluster={cfg['name']}`"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
