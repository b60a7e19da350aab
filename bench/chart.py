"""The run as a picture (``python -m bench`` writes it beside the tables): every CPU ratio as its
median with the range of its rounds against its target, and W5's lateness distribution.

Uses matplotlib, the bench's own extra (``pip install '.[bench]'``); without it the tables are
still printed and the chart is skipped with a note.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

CLIP = 4.0  # ratios past this (slow peers) are drawn to here, their value written beside


class Ratio(NamedTuple):
    """baseline ÷ mokku (or peer ÷ mokku) in CPU time per request: above 1, mokku spends less."""

    label: str
    median: float
    low: float
    high: float
    target: Optional[float]


def write(path: Path, ratios: List[Ratio], lateness: Dict[str, List[float]]) -> Optional[Path]:
    """Write the chart to ``path`` (SVG or PNG by its suffix); None when matplotlib is missing.
    ``lateness``: per W5 run, its lateness percentiles 1 to 99 in ms."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display here
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: a small, searchable SVG
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(
        1, 2, figsize=(13, max(4.0, 0.42 * len(ratios) + 1.5)), gridspec_kw={"width_ratios": [3, 2]}
    )
    rows = list(reversed(ratios))  # the first ratio at the top
    places = range(len(rows))
    met = [r.target is None or r.median >= r.target for r in rows]
    shown = [min(r.median, CLIP) for r in rows]
    left.barh(
        places,
        shown,
        xerr=[
            [max(0.0, min(r.median, CLIP) - min(r.low, CLIP)) for r in rows],
            [max(0.0, min(r.high, CLIP) - min(r.median, CLIP)) for r in rows],
        ],
        color=["#4c956c" if ok else "#d1495b" for ok in met],
        capsize=3,
    )
    for place, ratio in zip(places, rows):
        if ratio.target is not None:
            left.plot([ratio.target, ratio.target], [place - 0.4, place + 0.4], color="black", linewidth=2)
        left.text(min(ratio.high, CLIP) + 0.03, place, f"{ratio.median:.2f}", va="center", fontsize=8)
    left.set_xlim(0, CLIP + 0.4)
    left.set_yticks(list(places), [r.label for r in rows], fontsize=8)
    left.axvline(1.0, color="grey", linewidth=0.5, linestyle=":")
    left.set_xlabel(
        "CPU per request, baseline (or peer) ÷ mokku; black: target; bar: median, whiskers: range"
    )
    left.set_title("Ratios (higher is better for mokku)", fontsize=10)
    for label, cuts in lateness.items():
        right.plot(cuts, range(1, len(cuts) + 1), label=label)
    right.set_xscale("log")
    right.set_xlabel("chunk lateness (ms, log)")
    right.set_ylabel("percentile")
    right.set_title("W5: how late tokens arrive (behind schedule)", fontsize=10)
    if lateness:
        right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return path


def save(path: Path, ratios: List[Ratio], lateness: Dict[str, List[float]]) -> None:
    """The figures behind the chart, as JSON, so that it can be drawn again (``main``)."""
    path.write_text(json.dumps({"ratios": [r._asdict() for r in ratios], "lateness": lateness}, indent=1))


def main(argv: List[str]) -> int:
    """``python -m bench.chart FIGURES.json CHART.svg``: draw a saved run's chart again."""
    figures = json.loads(Path(argv[0]).read_text())
    ratios = [Ratio(**ratio) for ratio in figures["ratios"]]
    if write(Path(argv[1]), ratios, figures["lateness"]) is None:
        print("matplotlib is missing: pip install '.[bench]'", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
