"""A real browser (Debian chromium, headless) shows the quickstart run's predicted and actual cost in the
MLflow UI served by a real `mlflow server` on 127.0.0.1: the run's description is the predicted-vs-actual
table. The screenshot is kept in test-artifacts/mlflow-run-page.png."""

import html
import json
import re
import shutil
import subprocess
import tempfile

from mlflow.tracking import MlflowClient

from ftlaunch.contract.plan import read_plan
from ftlaunch.tracking import summary
from ftlaunch.tracking.summary import UI_VIEW
from tests.conftest import REPO
from tests.test_tracking import _free_port, _server, _stop

CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--virtual-time-budget=15000"]  # fmt: skip


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # CI installs it (scripts/setup.sh); a missing browser is a failure, not a skip
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True, timeout=900
        )
        exe = shutil.which("chromium")
    assert exe, "chromium not installed"
    return exe


ARTIFACTS = REPO / "test-artifacts"  # kept after the run (git-ignored); CI can archive it


def test_ui_shows_predicted_and_actual_cost(quickstart, tmp_path):
    d, run_dir = quickstart
    state = json.loads((run_dir / "mlflow.json").read_text())
    run = MlflowClient(tracking_uri=state["uri"]).get_run(state["run_id"])
    plan = read_plan(run_dir / "plan.json")
    actuals = json.loads((run_dir / "actuals.json").read_text())
    port = _free_port()
    store = tmp_path / "store"
    store.mkdir()
    (store / "server.db").write_bytes((d / "mlflow.db").read_bytes())  # the quickstart's store, served
    server = _server(port, store)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "mlflow-run-page.png"
    shot.unlink(missing_ok=True)
    try:
        # the link `launch` prints (ftlaunch/tracking/summary.py): run page, training view
        url = (
            f"http://127.0.0.1:{port}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?{UI_VIEW}"
        )
        chrome = _chromium()
        with tempfile.TemporaryDirectory() as profile:
            # a window narrower than the screenshot's: the table must fit a 1000 px wide browser too
            dom = subprocess.run([chrome, *CHROME_FLAGS, f"--user-data-dir={profile}", "--window-size=1000,1000",
                                  "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout  # fmt: skip
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chrome, *CHROME_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                            "--window-size=1400,1400", url], capture_output=True, timeout=120)  # fmt: skip
    finally:
        _stop(server)
    print(f"screenshot: {shot}")
    m = run.data.metrics
    for name in ("cost_usd/predicted", "cost_usd/actual", "cost_usd/error_pct"):
        assert name in dom, f"{name} not on the run page"
        assert str(m[name])[:8] in dom, f"value of {name} ({m[name]}) not on the run page"
    # the description is the predicted-vs-actual table, rendered as an HTML table on the page
    tables = re.findall(r"<table.*?</table>", dom, re.S)
    desc = next((t for t in tables if "predicted" in t and "error" in t), None)
    assert desc is not None, "no predicted-vs-actual table in the run description"
    grid = [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<t[dh][^>]*>.*?</t[dh]>", row, re.S)
        ]
        for row in re.findall(r"<tr.*?</tr>", desc, re.S)
    ]
    assert [r[0] for r in grid] == [summary.status(plan, actuals), "predicted", "actual", "error"]
    for j, (what, p, a, e) in enumerate(summary.rows(plan, actuals), 1):
        assert [r[j] for r in grid] == [what, p, a, e], (what, [r[j] for r in grid])
    # and all of it readable without a click: the run page shows 100 px of a description and, when it is
    # taller, fades the rest and adds "Show more" (MLflow 3.17 RunViewDescriptionBox)
    assert 'data-testid="truncation-gradient"' not in dom and 'data-testid="show-comment-toggle"' not in dom
    assert "Judges" not in dom  # the training view, not GenAI's (whose sidebar lists Judges)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
