"""Charts and tables for the report and the experiments table, rendered to deterministic bytes.

matplotlib's Agg backend (no display needed); PNG metadata without the 'Software' stamp, a fixed hash salt,
so the same numbers always give the same bytes and a report can be verified digest for digest.
"""
from __future__ import annotations

import base64
import html
import io
from functools import lru_cache


@lru_cache(maxsize=None)
def _pyplot():
    """matplotlib on first use only: a stage module is imported by `doit list`, which must stay quick."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"svg.hashsalt": "tinyedge", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "figure.dpi": 100, "savefig.dpi": 100})
    return plt


def figure(columns: int = 1, width: float = 4.2, height: float = 3.2):
    """A figure of `columns` side-by-side axes; returns (figure, list of axes)."""
    fig, axes = _pyplot().subplots(1, columns, figsize=(width * columns, height), squeeze=False)
    return fig, list(axes[0])


def pareto_points(axis, points: list[tuple[float, float]], best: list[bool], fits: list[bool | None],
                  labels: list[str | None]) -> None:
    """Scatter (x, y) points: the Pareto front as red stars, points that do not fit the board hollow; points at
    the same place share one label ("3,7"); a None label is not drawn."""
    shared: dict[tuple, list[str]] = {}
    for at, star, fit, label in zip(points, best, fits, labels):
        axis.scatter(*at, s=90 if star else 40, marker="*" if star else "o", zorder=3,
                     color="#d62728" if star else "none" if fit is False else "#7f7f7f", edgecolors="#7f7f7f")
        if label is not None:
            shared.setdefault(at, []).append(label)
    for at, names in shared.items():
        axis.annotate(",".join(names), at, textcoords="offset points", xytext=(5, 4))


def x_axis(axis, values: list[float], label: str) -> None:
    """Label the x axis; a log scale when the values span more than 20x (a 6 KB and a 2 MB model)."""
    if values and min(values) > 0 and max(values) > 20 * min(values):
        axis.set_xscale("log")
        label += " (log scale)"
    axis.set_xlabel(label)


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    _pyplot().close(fig)
    return buffer.getvalue()


def img_tag(png_bytes: bytes, alt: str) -> str:
    """An <img> holding the PNG itself (base64), so the page opens offline with nothing beside it."""
    data = base64.b64encode(png_bytes).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text_table(headers: list[str], rows: list[list]) -> str:
    """Aligned plain-text table for the terminal."""
    cells = [headers] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
