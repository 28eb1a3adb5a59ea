"""The report as a view: JSON records in, an HTML page (charts embedded as PNG) and Markdown out. No model is
loaded here: the stages that had the models loaded wrote the numbers (train/prune model_summary.json)."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from . import charts


def layer_rows(trained: list[dict], pruned: list[dict]) -> list[dict]:
    """Per layer of the model that is quantized (the pruned one), with the trained model's parameter count."""
    before = {row["name"]: row["params"] for row in trained}
    return [{**row, "float_params": before.get(row["name"])} for row in pruned]


def layer_errors(data) -> dict:
    """quantize/layer_error.json -> {layer: (RMSE, RMSE in units of the int8 step)} of each layer's output."""
    return {row["layer"]: (row["rmse"], row.get("rmse/scale")) for row in (data or {}).get("layers", [])}


def budget_rows(budget) -> list[list]:
    """An artifacts.Budget -> [memory, used, available]: flash for model and runtime; the arena in SRAM or PSRAM."""
    arena, flash = budget.arena, budget.flash
    if arena["placement"] == "heap":   # MicroPython: the package in its filesystem, arena and weights in its heap
        return [["flash (MicroPython filesystem)", flash["needed_bytes"], flash["available_bytes"]],
                ["MicroPython heap (arena + weights)", arena["bytes"], arena["heap_available_bytes"]]]
    internal = arena["placement"] == "internal"
    return [["flash (app partition)", flash["needed_bytes"], flash["available_bytes"]],
            ["SRAM (tensor arena)", arena["bytes"] if internal else 0, arena["internal_available_bytes"]],
            ["PSRAM (tensor arena)", 0 if internal else arena["bytes"], arena["psram_available_bytes"]]]


def scalars(data) -> list[list]:
    """Top-level numbers and strings of a JSON object, as [key, value] rows."""
    if not isinstance(data, dict):
        return []
    return [[k, v] for k, v in data.items() if isinstance(v, (int, float, str, bool))]


# ---- charts ---------------------------------------------------------------------------------------------

def dataset_chart(classes: list[str], split_counts: dict, x: np.ndarray, y: np.ndarray) -> bytes:
    fig, (counts, grid) = charts.figure(2, width=4.6)
    bottom = np.zeros(len(classes))
    for split in ("train", "val", "test"):
        values = np.array(split_counts[split])
        counts.bar(range(len(classes)), values, bottom=bottom, label=split)
        bottom += values
    counts.set_xticks(range(len(classes)), classes)
    counts.set_title("samples per class")
    counts.legend(ncol=3, loc="lower center")
    samples = [x[np.flatnonzero(y == c)[0]] for c in range(len(classes)) if np.any(y == c)]
    images = x.dtype == np.uint8
    _tiles(grid, np.stack(samples if images else [_as_gray(sample) for sample in samples]), 5)
    grid.set_title("one training sample per class" + ("" if images else " (features, each min to max in gray)"))
    return charts.png(fig)


def _as_gray(features: np.ndarray) -> np.ndarray:
    """Float features of any shape as a uint8 (rows, columns, 1) picture: the first axis down, the rest across."""
    table = features.reshape(1, -1) if features.ndim == 1 else features.reshape(features.shape[0], -1)
    low, high = float(table.min()), float(table.max())
    scaled = (table - low) / (high - low) * 255 if high > low else np.zeros_like(table)
    return np.round(scaled).astype(np.uint8)[:, :, None]


def _tiles(axis, images: np.ndarray, columns: int) -> None:
    """uint8 images (N, H, W, C) drawn as one grid."""
    columns = min(columns, len(images))
    rows, (height, width, channels) = -(-len(images) // columns), images.shape[1:]
    tiles = np.zeros((rows * height, columns * width, channels), np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        tiles[r * height:(r + 1) * height, c * width:(c + 1) * width] = image
    axis.imshow(tiles[:, :, 0] if channels == 1 else tiles, cmap="gray", interpolation="nearest")
    axis.axis("off")


def augment_chart(images: np.ndarray) -> bytes:
    fig, (axis,) = charts.figure(1, width=4.6, height=4.6)
    _tiles(axis, images, 4)
    axis.set_title("augmented training samples (dataset.augment)")
    return charts.png(fig)


def training_chart(history: dict, schedule: dict | None = None) -> bytes:
    """Loss and accuracy per epoch; a dashed line where fine-tuning starts, a star at the epoch kept."""
    fig, (loss, accuracy) = charts.figure(2)
    phases = (schedule or {}).get("phases", [])
    for key, axis in (("loss", loss), ("accuracy", accuracy)):
        for prefix in ("", "val_"):
            if history.get(prefix + key):
                values = history[prefix + key]
                axis.plot(range(1, len(values) + 1), values, marker="o", label=prefix + key)
        for phase in phases[1:]:
            axis.axvline(phase["first_epoch"] - 0.5, linestyle="--", color="gray", label="fine-tuning starts")
        best = (schedule or {}).get("best_epoch")
        if best and history.get("val_" + key):
            axis.plot([best], [history["val_" + key][best - 1]], marker="*", markersize=14, linestyle="",
                      color="black", label=f"kept: epoch {best}")
        axis.set_xlabel("epoch")
        axis.set_title(key)
        if axis.lines:  # no training (epochs: 0) draws no curve, and a legend of nothing warns
            axis.legend()
    return charts.png(fig)


def compression_chart(rows: list[list]) -> bytes:
    fig, axes = charts.figure(3, width=3.2)
    names = [row[0] for row in rows]
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c"][:len(rows)]
    for axis, column, title in zip(axes, (1, 2, 3), ("test accuracy", "model bytes", "arena bytes")):
        values = [row[column] for row in rows]
        axis.bar(names, values, color=colours)
        for position, value in enumerate(values):
            axis.annotate(f"{value:.3f}" if column == 1 else f"{value:,}", (position, value),
                          ha="center", va="bottom")
        axis.set_title(title)
    axes[0].set_ylim(0, 1.08)
    return charts.png(fig)


def confusion_chart(confusion: list[list], classes: list[str]) -> bytes:
    matrix = np.array(confusion)
    fig, (axis,) = charts.figure(1, width=4.6, height=4.0)
    axis.imshow(matrix, cmap="Blues")
    axis.grid(False)
    for (row, column), value in np.ndenumerate(matrix):
        if value:
            axis.text(column, row, str(value), ha="center", va="center",
                      color="white" if value > matrix.max() / 2 else "black")
    axis.set_xticks(range(len(classes)), classes)
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted (int8 in TFLM)")
    axis.set_ylabel("true")
    return charts.png(fig)


def layer_chart(layers: list[dict]) -> bytes:
    """Per layer: int8 weight bytes (flash) and output activation bytes (arena), and the MACs (time)."""
    fig, (memory, work) = charts.figure(2, width=5.0)
    names = [row["name"] for row in layers]
    positions = np.arange(len(layers))
    memory.barh(positions - 0.2, [row["weight_bytes"] for row in layers], 0.4, label="int8 weights (flash)")
    memory.barh(positions + 0.2, [row["activation_bytes"] for row in layers], 0.4, label="output activation (arena)")
    memory.set_title("memory per layer, bytes")
    memory.legend()
    work.barh(positions, [row["macs"] for row in layers], color="#2ca02c")
    work.set_title("multiply-accumulates per layer")
    for axis in (memory, work):
        axis.set_yticks(positions, names)
        axis.invert_yaxis()
    return charts.png(fig)


def budget_chart(rows: list[list]) -> bytes:
    """Each memory as a bar of its available bytes, filled to the share the firmware uses."""
    fig, (axis,) = charts.figure(1, width=8.0, height=2.2)
    names = [row[0] for row in rows]
    shares = [100 * used / available if available else 0 for _, used, available in rows]
    axis.barh(names, [100] * len(rows), color="#e5e5e5", label="available")
    axis.barh(names, shares, color="#d62728", label="used")
    for position, ((_, used, available), share) in enumerate(zip(rows, shares)):
        axis.annotate(f"{used:,} / {available:,} B ({share:.1f} %)", (101, position), va="center")
    axis.set_xlim(0, 200)
    axis.set_xticks(range(0, 101, 20))
    axis.set_xlabel("% used (red) of what the board offers (grey)")
    axis.invert_yaxis()
    return charts.png(fig)


# ---- the page -------------------------------------------------------------------------------------------

CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
       "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}"
       "pre{background:#f6f6f6;padding:.6em}.absent{color:#a33}")


class Page:
    """Builds the HTML page and the Markdown summary side by side, section by section."""

    def __init__(self, title: str):
        self.html = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
                     f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
        self.md = [f"# {title}\n"]

    def section(self, title: str) -> None:
        self.html.append(f"<h2>{html.escape(title)}</h2>")
        self.md.append(f"\n## {title}\n")

    def text(self, text: str, absent: bool = False) -> None:
        css = ' class="absent"' if absent else ""
        self.html.append(f"<p{css}>{html.escape(text)}</p>")
        self.md.append(f"{'_' if absent else ''}{text}{'_' if absent else ''}\n")

    def table(self, headers: list[str], rows: list[list]) -> None:
        self.html.append(charts.html_table(headers, rows))
        self.md.append(charts.markdown_table(headers, rows) + "\n")

    def code(self, text: str) -> None:
        self.html.append(f"<pre>{html.escape(text)}</pre>")
        self.md.append(f"```yaml\n{text}```\n")

    def chart(self, png_bytes: bytes, alt: str) -> None:
        self.html.append(f"<p>{charts.img_tag(png_bytes, alt)}</p>")

    def write(self, folder: Path) -> None:
        (folder / "report.html").write_text("".join(self.html) + "</body></html>\n", encoding="utf-8")
        (folder / "report.md").write_text("\n".join(self.md), encoding="utf-8")
