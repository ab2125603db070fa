"""One fresh folder per launch: two launches never share or overwrite one."""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime
from pathlib import Path

from ftlaunch.contract.errors import ConfigError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    return _SAFE.sub("-", name).strip("-.")[:80] or "job"


def new_run_dir(root: str | os.PathLike[str], job_name: str) -> Path:
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"output_root={str(root)!r} cannot be created ({e.strerror}): pick a writable folder"
        ) from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError(
            f"output_root={str(root)!r} is not writable: pick a writable folder with output_root=..."
        )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        d = root / f"{safe_name(job_name)}-{stamp}-{secrets.token_hex(3)}"
        try:
            d.mkdir()  # atomic: fails if another launch took the name
            return d.resolve()
        except FileExistsError:
            continue
    raise ConfigError(f"could not create a fresh run folder under {root}")
