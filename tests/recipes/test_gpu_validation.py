"""benchmarks/gpu_validation.py runs on CPU with the tiny model and writes its results JSON (2 of its 4 methods
here, to keep the suite short; all four take about 40 s on 2 cores)."""

from __future__ import annotations

import json
import subprocess

from conftest import PY, REPO


def test_gpu_validation_on_cpu(tmp_path, recipe_env):
    predict = tmp_path / "predict.json"
    predict.write_text(json.dumps({"lora": {"peak_mem_gib": 0.5, "tokens_per_s_per_gpu": 1000}}))
    out = tmp_path / "gv.json"
    cmd = [
        PY,
        "benchmarks/gpu_validation.py",
        "--steps",
        "2",
        "--methods",
        "lora,dpo",
        "--predict",
        str(predict),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=recipe_env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["model"] == "tiny"
    by = {r["method"]: r for r in res["results"]}
    assert set(by) == {"lora", "dpo"}  # qlora and full: test_recipe_methods.py (same recipe code path)
    for r in by.values():
        m = r["measured"]
        assert m["ok"] and m["peak_mem_gib"] > 0 and m["tokens_per_s_per_gpu"] > 0 and m["steps"] == 2
    assert by["lora"]["predicted"]["peak_mem_gib"] == 0.5 and by["lora"]["predicted"]["source"] == "--predict"
    assert "lora" in proc.stdout and "0.500" in proc.stdout
