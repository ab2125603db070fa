"""A real browser (Debian chromium, headless) shows the quickstart run's predicted and actual cost in the
MLflow UI served by a real `mlflow server` on 127.0.0.1."""

import json
import shutil
import subprocess
import tempfile

from mlflow.tracking import MlflowClient

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


def test_ui_shows_predicted_and_actual_cost(quickstart, tmp_path):
    d, run_dir = quickstart
    state = json.loads((run_dir / "mlflow.json").read_text())
    run = MlflowClient(tracking_uri=state["uri"]).get_run(state["run_id"])
    port = _free_port()
    store = tmp_path / "store"
    store.mkdir()
    (store / "server.db").write_bytes((d / "mlflow.db").read_bytes())  # the quickstart's store, served
    server = _server(port, store)
    try:
        url = f"http://127.0.0.1:{port}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        chrome = _chromium()
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run([chrome, *CHROME_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                                 capture_output=True, text=True, timeout=120).stdout  # fmt: skip
        with tempfile.TemporaryDirectory() as profile:
            shot = tmp_path / "run.png"
            subprocess.run([chrome, *CHROME_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                            "--window-size=1400,1200", url], capture_output=True, timeout=120)  # fmt: skip
    finally:
        _stop(server)
    m = run.data.metrics
    for name in ("predicted_cost_usd", "actual_cost_usd"):
        assert name in dom, f"{name} not on the run page"
        assert str(m[name])[:8] in dom, f"value of {name} ({m[name]}) not on the run page"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
