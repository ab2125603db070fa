"""Run a written plan: placeholder until the executors land (issue 5)."""

from __future__ import annotations

from launcher.errors import ConfigError


def execute(plan, run_dir, executor: str, cfg: dict) -> None:
    raise ConfigError("running plans is not available yet: use dry_run=true")
