"""The shipped configuration (ftlaunch/conf): Hydra's config groups, read as files for the lists and lookups
planning needs before (or without) Hydra composing anything."""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.abc import Traversable
from typing import Any

CONF_PACKAGE = "ftlaunch.conf"  # Hydra: pkg://ftlaunch.conf, initialize_config_module("ftlaunch.conf")
GROUPS = ("model", "data", "method", "gpu", "cluster")


def conf_dir() -> Traversable:
    return resources.files(CONF_PACKAGE)


def known(group: str) -> list[str]:
    """The names a config group offers (ftlaunch/conf/<group>/*.yaml)."""
    return sorted(f.name[:-5] for f in conf_dir().joinpath(group).iterdir() if f.name.endswith(".yaml"))


def load(group: str, name: str) -> dict[str, Any]:
    """One config group entry as a plain dict (ftlaunch/conf/<group>/<name>.yaml)."""
    import yaml  # PyYAML ships with omegaconf; imported here to keep importing this module cheap

    return yaml.safe_load(conf_dir().joinpath(group, f"{name}.yaml").read_text())


@cache
def gpu_catalog() -> dict[str, dict[str, Any]]:
    """ftlaunch/conf/gpu/*.yaml by GPU name (the planner enumerates them, Hydra picks one)."""
    out = {}
    for name in known("gpu"):
        if name != "auto":
            d = load("gpu", name)
            out[d["name"]] = d
    return out
