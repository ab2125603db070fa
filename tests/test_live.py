"""The quiet terminal (ftlaunch/run/progress.py) against a real child process that prints like the recipe does:
marked lines for the person, library noise, metrics.jsonl rows, an error line, a crash."""

import io
import json
import sys
import textwrap

import pytest
from rich.console import Console

from ftlaunch.run import progress as live

CHILD = textwrap.dedent(
    """
    import json, pathlib, sys, time, warnings
    run = pathlib.Path(sys.argv[1])
    print("[ftlaunch] training demo: lora sft, starting fresh", flush=True)
    print("Map: 100%|##########| 512/512 [00:00<00:00, 9184.58 examples/s]", flush=True)
    warnings.warn("a third-party FutureWarning")
    for step in (1, 2, 3):
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "loss": 1.0 / step, "time": time.time()}) + "\\n")
        time.sleep(0.3)
    if sys.argv[2] == "0":  # the recipe's ledger charges from its own start (ftlaunch/recipes/actuals.py)
        (run / "actuals.json").write_text(json.dumps({"cost_usd": 0.1234}))
    if sys.argv[2] == "2":
        print("[ftlaunch] error: data.jsonl line 3: no 'text' field", file=sys.stderr, flush=True)
    if sys.argv[2] == "3":
        raise RuntimeError("boom in the training loop")
    sys.exit(int(sys.argv[2]))
    """
)


def _run(tmp_path, code: int):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = io.StringIO()
    console = Console(file=out, width=120, highlight=False)
    rc = live.run_quiet([sys.executable, str(script), str(tmp_path), str(code)], {}, tmp_path, 3, 0.09 / 3600,
                        console=console)  # fmt: skip
    return rc, out.getvalue(), (tmp_path / "train.log").read_text()


def test_quiet_shows_our_lines_and_progress_logs_everything(tmp_path, capsys):
    rc, shown, log = _run(tmp_path, 0)
    assert rc == 0
    assert "training demo: lora sft" in shown and "[ftlaunch]" not in shown
    assert "3/3" in shown and "spent $" in shown and "ETA" in shown
    assert shown.rstrip().splitlines()[-1].endswith("spent $0.1234")  # the last frame: the ledger's cost
    for noise in ("Map:", "examples/s", "FutureWarning"):
        assert noise not in shown, noise
        assert noise in log, noise
    assert "[ftlaunch] training demo" in log
    assert capsys.readouterr().err == ""


def test_error_line_reaches_stderr_alone(tmp_path, capsys):
    rc, shown, _ = _run(tmp_path, 2)
    assert rc == 2
    assert capsys.readouterr().err == "error: data.jsonl line 3: no 'text' field\n"
    assert "no 'text' field" not in shown


def test_a_crash_shows_the_end_of_the_log(tmp_path):
    rc, shown, log = _run(tmp_path, 3)
    assert rc == 1
    assert "RuntimeError: boom in the training loop" in shown and "train.log" in shown


def test_eta_from_measured_step_time():
    assert live.eta_s(1, 10, None, (1, 100.0)) is None  # one step seen: no rate yet
    assert live.eta_s(5, 10, (1, 100.0), (5, 108.0)) == pytest.approx(10.0)  # 2 s/step, 5 left
    assert live.eta_s(10, 10, (1, 100.0), (10, 118.0)) == 0


def test_last_step_ignores_a_half_written_row(tmp_path):
    f = tmp_path / "metrics.jsonl"
    assert live.last_step(f) is None
    f.write_text(json.dumps({"step": 4, "time": 5.0}) + "\n" + '{"step": 5, "ti')
    assert live.last_step(f) == (4, 5.0)
