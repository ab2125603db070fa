"""launch-report --plot: tick labels that do not overlap, and every point named (numbered, with a key)."""

import random

import pytest

from ftlaunch.forecast.compare import METRICS
from ftlaunch.tracking.report import figure, plot


def _rows(n: int, spread: float) -> list[dict]:
    rnd = random.Random(n)
    rows = []
    for i in range(n):
        base = {"cost_usd": 0.003, "hours": 0.035, "tokens_per_s_per_gpu": 3900.0, "peak_mem_gib": 0.6}
        pred = {k: v * rnd.uniform(1, spread) for k, v in base.items()}
        rows.append({
            "name": f"tiny-sample-20261130-17{i:04d}-619d4a", "method": rnd.choice(["lora", "qlora", "full"]),
            "gpu": "cpu", "n_gpus": 1, "predicted": pred,
            "actual": {k: v * rnd.uniform(0.5, 2.0) for k, v in pred.items()},
        })  # fmt: skip
    return rows


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("n,spread", [(1, 1.0), (3, 1.2), (20, 1.3), (12, 1000.0)])
def test_tick_labels_do_not_overlap_and_every_run_is_named(n, spread, tmp_path):
    rows = _rows(n, spread)
    fig = figure(rows)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes[:4]
    for ax in axes:
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            boxes = [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]
            assert len(boxes) >= 2, "an axis needs at least two labelled ticks to be read"
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    assert not _overlap(a, b), [t.get_text() for t in labels]
            assert all("e+" not in t.get_text() for t in labels)  # 4M, not 4e+03k
        numbers = sorted(int(t.get_text()) for t in ax.texts if t.get_text().isdigit())
        assert numbers == list(range(1, n + 1))  # each run's point carries its number
    key = "\n".join(t.get_text() for t in fig.axes[4].texts)
    for i, r in enumerate(rows, 1):
        assert f"{i}  {r['name']}  ({r['method']}, 1xcpu)" in key
    png = plot(rows, tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(METRICS) == 4
