"""Which checkpoint to resume from. HF Trainer writes run_dir/checkpoints/checkpoint-N in place; a checkpoint
only counts once ftlaunch.recipes.callbacks.MarkComplete has written its marker after every rank finished saving, so a
half-written folder (job killed mid-save) is never picked."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from ftlaunch.contract.plan import atomic_write_text

MARKER = "ftlaunch-complete.json"
_STEP = re.compile(r"^checkpoint-(\d+)$")


def step_of(path: Path) -> int | None:
    m = _STEP.match(path.name)
    return int(m.group(1)) if m else None


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file() and (path / "trainer_state.json").is_file()


def mark_complete(path: Path, step: int) -> None:
    atomic_write_text(path / MARKER, json.dumps({"step": step, "time": time.time()}) + "\n")


def checkpoints(root: Path) -> list[Path]:
    """checkpoint-N folders under root, oldest step first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and step_of(p) is not None]
    return sorted(found, key=step_of)


def latest_complete(root: Path) -> Path | None:
    done = [p for p in checkpoints(root) if is_complete(p)]
    return done[-1] if done else None


def pick_resume(root: Path, resume: str) -> Path | None:
    """--resume auto: newest complete checkpoint (None if there is none); never: start fresh; else a path."""
    if resume == "never":
        return None
    if resume == "auto":
        return latest_complete(root)
    path = Path(resume)
    if not is_complete(path):
        raise ValueError(f"{path}: not a complete checkpoint (no {MARKER} or trainer_state.json)")
    return path


def incomplete(root: Path) -> list[Path]:
    """Half-written checkpoints: never resumed from, and removed before training writes new ones."""
    return [p for p in checkpoints(root) if not is_complete(p)]
