"""Training data rows and paths, as both sides see them: formats, per-row checks, local path resolution.

Torch-free and stdlib-only: the login side (ftlaunch/config/datafile.py) checks a user's file with exactly the checks
the compute side (ftlaunch/recipes/data.py) runs again before training, and both resolve a data.path the same way, so a
path or a row the login node accepts cannot fail on the node after the job has queued.

Formats (plan.data.format):
  alpaca      {"instruction", "input"?, "output"}
  messages    {"messages": [{"role", "content"}, ...]}
  preference  {"prompt", "chosen", "rejected"}
  text        {"text"}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FORMATS = ("alpaca", "messages", "preference", "text")
ROLES = ("system", "user", "assistant", "tool")
# Preference pairs whose chosen equals rejected carry no signal (DPO's loss gradient is zero on them); a few
# are tolerated as noise, more than this share means the file was built wrong.
MAX_TIED_PAIRS = 0.05


class DataError(ValueError):
    """A data problem the user must fix; str() is the whole one-line message."""


def local_path(path: str) -> Path | None:
    """data.path -> the absolute local file or folder it names, or None for builtin: and dataset names.

    `~` is expanded and relative paths are made absolute here, on the side that launches, and the result is
    what plan.json carries: the node may have another working directory or HOME.
    """
    if not path or path.startswith("builtin:"):
        return None
    p = Path(path).expanduser()
    if p.exists() or path.endswith((".jsonl", ".json")) or path.startswith(("/", "./", "../", "~")):
        return p.absolute()
    return None


# ---------------------------------------------------------------- row checks


def _text(row: dict, key: str, what: str, need: str) -> str | None:
    if key not in row:
        return f"{what} row has no '{key}' field; each row needs {need}"
    if not isinstance(row[key], str):
        return f"'{key}' must be a string, got {type(row[key]).__name__}"
    return None


def _turns(turns: Any, key: str) -> str | None:
    if not isinstance(turns, list) or not turns:
        return f"'{key}' must be a non-empty list of {{role, content}} objects"
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or "role" not in t or "content" not in t:
            return f"'{key}'[{i}] must be an object with 'role' and 'content'"
        if t["role"] not in ROLES:
            return f"'{key}'[{i}] has role {t['role']!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(t["content"], str):
            return f"'{key}'[{i}].content must be a string, got {type(t['content']).__name__}"
    return None


def check_row(row: Any, fmt: str) -> str | None:
    """What is wrong with one row, or None."""
    if not isinstance(row, dict):
        return f"row must be a JSON object, got {type(row).__name__}"
    if fmt == "alpaca":
        need = "instruction, output (input optional)"
        err = _text(row, "instruction", "alpaca", need) or _text(row, "output", "alpaca", need)
        if err is None and row.get("input") is not None and not isinstance(row["input"], str):
            err = f"'input' must be a string, got {type(row['input']).__name__}"
        return err
    if fmt == "messages":
        if "messages" not in row:
            return "messages row has no 'messages' field; each row needs messages: [{role, content}, ...]"
        err = _turns(row["messages"], "messages")
        if err is None and not any(t["role"] == "assistant" for t in row["messages"]):
            err = "'messages' has no assistant turn to learn from"
        return err
    if fmt == "preference":
        need = "prompt, chosen, rejected"
        for key in ("prompt", "chosen", "rejected"):
            if key not in row:
                return f"preference row has no '{key}' field; each row needs {need}"
            v = row[key]
            if not isinstance(v, str) and _turns(v, key) is not None:
                return f"'{key}' must be a string or a list of {{role, content}} objects"
        return None
    if fmt == "text":
        return _text(row, "text", "text", "text")
    raise DataError(f"data format {fmt!r} is not one of {', '.join(FORMATS)}")


def _parse(path: Path) -> tuple[list[Any], Callable[[int], str]]:
    """The rows of a JSON array file or a JSON-lines file, and where row i (from 1) sits in it; raises
    DataError on bad JSON. Positions are named only when something is wrong (the 50k-row first plan is timed
    in benchmarks/plan_latency.py)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
        return items, lambda i: f"{path} item {i}"
    rows, numbers, loads = [], [], json.loads
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        numbers.append(n)
    return rows, lambda i: f"{path} line {numbers[i - 1]}"


def validate_file(path: str | Path, fmt: str) -> int:
    """Check every row of a local JSONL/JSON file. Returns the row count; raises DataError naming the line."""
    return len(read_valid_rows(path, fmt))


def read_valid_rows(path: str | Path, fmt: str) -> list[Any]:
    """Every row of a local JSONL/JSON file, parsed once and checked; raises DataError naming the line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: data file not found")
    rows, where = _parse(p)
    _check_all(rows, fmt, str(p), where)
    return rows


def validate_rows(rows: Iterable[Any], name: str, fmt: str) -> int:
    """The same checks for a dataset that only load_dataset can read (hub name, folder)."""
    return _check_all(rows, fmt, name, lambda i: f"{name} row {i}")


def _check_all(rows: Iterable[Any], fmt: str, name: str, where: Callable[[int], str]) -> int:
    """Rows -> row count; the first bad row raises DataError naming where(i) it is."""
    n, tied, first_tied = 0, 0, 0
    for n, row in enumerate(rows, 1):  # n: the count, after the loop
        err = check_row(row, fmt)
        if err:
            raise DataError(f"{where(n)}: {err}")
        if fmt == "preference" and row["chosen"] == row["rejected"]:
            tied += 1
            first_tied = first_tied or n
    if n == 0:
        raise DataError(f"{name}: no rows")
    if tied > MAX_TIED_PAIRS * n:
        raise DataError(
            f"{where(first_tied)}: chosen equals rejected, a pair with no preference signal; {tied} of {n} rows "
            f"are like this (more than {MAX_TIED_PAIRS:.0%}): fix or drop them"
        )
    return n


def check_objective(fmt: str, objective: str) -> None:
    if objective == "dpo" and fmt != "preference":
        raise DataError(
            f"objective dpo needs preference data (prompt, chosen, rejected); plan.data.format is {fmt!r}"
        )
    if objective not in ("sft", "dpo"):
        raise DataError(f"objective {objective!r} is not sft or dpo")
