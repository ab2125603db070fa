"""The recorded plans (tests/golden/plans/) come back identical: printed plan, exit code and plan.json."""

from __future__ import annotations

import json

import pytest

from tests.golden_plans import CASES, GOLDEN, run_case


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_is_unchanged(name, tmp_path):
    want = json.loads((GOLDEN / f"{name}.json").read_text())
    got = json.loads(json.dumps(run_case(name, tmp_path / name)))
    assert got["rc"] == want["rc"]
    assert got["stderr"] == want["stderr"]
    assert got["plan"] == want["plan"]
    assert got["stdout"] == want["stdout"]
