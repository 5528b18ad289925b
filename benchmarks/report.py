"""The benchmark suite's table (Markdown and JSON) and its plot (PNG)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One figure on one broker: plain Celery's value, Horus's, and Horus's advantage
    (``ratio``: above 1 Horus is better, whichever way the unit points)."""

    broker: str
    figure: str
    unit: str
    celery: float | None
    horus: float
    ratio: float | None
    #: the smallest ratio the performance targets accept ("" when the figure has none)
    target: float | None = None

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None:
            return ""
        return "met" if self.ratio >= self.target else "NOT met"


def ratio(celery: float, horus: float, higher_is_better: bool) -> float:
    """Horus's advantage over plain Celery."""
    if higher_is_better:
        return horus / celery if celery else float("inf")
    return celery / horus if horus else float("inf")


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def markdown(rows: list[Row], heading: str) -> str:
    lines = [
        heading,
        "",
        "| broker | figure | unit | plain Celery | Horus | Horus ÷ Celery (>1 better) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        target = f"≥ {row.target:g}x {row.verdict}" if row.target is not None else ""
        ratio_text = f"{row.ratio:.2f}x" if row.ratio is not None else "—"
        lines.append(
            f"| {row.broker} | {row.figure} | {row.unit} | {_num(row.celery)} | "
            f"{_num(row.horus)} | {ratio_text} | {target} |"
        )
    return "\n".join(lines) + "\n"


def write(rows: list[Row], out: Path, heading: str) -> list[Path]:
    """Write the table (``.md``, ``.json``) and the plot (``.png``) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = out / "latest.md"
    table.write_text(markdown(rows, heading))
    data = out / "latest.json"
    data.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    plot = out / "latest.png"
    draw(rows, plot, heading.lstrip("# "))
    return [table, data, plot]


def draw(rows: list[Row], path: Path, title: str) -> None:
    """Horizontal bars of Horus's advantage per figure, one colour per broker, the targets
    marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.ratio is not None]
    figures = list(dict.fromkeys(r.figure for r in shown))
    brokers = list(dict.fromkeys(r.broker for r in shown))
    height = 0.8 / max(1, len(brokers))
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(figures) + 1.8))
    for b, broker in enumerate(brokers):
        for f, figure in enumerate(figures):
            match = [r for r in shown if r.broker == broker and r.figure == figure]
            if not match:
                continue
            row = match[0]
            assert row.ratio is not None
            y = f + b * height
            ax.barh(y, row.ratio, height=height, color=f"C{b}", label=broker if f == 0 else None)
            ax.text(row.ratio, y, f" {row.ratio:.2f}x", va="center", fontsize=8)
            if row.target is not None:
                ax.plot([row.target] * 2, [y - height / 2, y + height / 2], "k-", lw=2)
    ax.axvline(1.0, color="grey", lw=1, ls="--")
    ax.set_yticks([f + height * (len(brokers) - 1) / 2 for f in range(len(figures))])
    ax.set_yticklabels(figures, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(
        "Horus ÷ plain Celery, log scale "
        "(right of the dashed line: Horus ahead; black ticks: targets)"
    )
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
