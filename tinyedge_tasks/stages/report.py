"""report: one self-contained HTML page (charts embedded as PNG) and a Markdown summary of the build.

It shows what exists and says what is absent (pruning off, no codegen, no firmware build). Its bytes depend
only on its inputs (no dates, no absolute paths), so a submission can verify the report like any artifact.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import yaml

from ..report import charts
from ..tflite import runtime as tflm

DEFAULT_CLOCK_MHZ = 240        # ESP32 (the ESP32-CAM's chip) when the board file gives no clock
MACS_PER_CYCLE = 0.25          # TFLM int8 reference kernels on a core without SIMD: a rough, stated guess


def _json(ctx, name: str):
    path = ctx.inputs.get(name)
    return json.loads(path.read_text()) if path else None


def layer_rows(model, pruned) -> list[dict]:
    """Per layer of the model that is quantized: parameters (float and after pruning), MACs, kernel sparsity,
    int8 weight bytes and int8 output activation bytes."""
    from ..ml.layers import layer_table
    before = {row["name"]: row["params"] for row in layer_table(model)}
    rows = []
    for row, layer in zip(layer_table(pruned), (l for l in pruned.layers if type(l).__name__ != "InputLayer")):
        weights = layer.get_weights()
        kernel = weights[0] if weights else None
        rows.append({**row, "float_params": before.get(row["name"]),
                     "sparsity": None if kernel is None or kernel.ndim < 2 else float(np.mean(kernel == 0)),
                     # int8 kernels, int32 biases (TFLM's layout), int8 output activations
                     "weight_bytes": int(sum(w.size * (4 if w.ndim == 1 else 1) for w in weights)),
                     "activation_bytes": int(np.prod(row["output_shape"]))})
    return rows


def _float_footprint(model, sample: np.ndarray) -> tuple[int, int]:
    """(bytes, smallest TFLM arena) of the float32 TFLite model, for comparison with the int8 one."""
    from ..ml.keras_util import tf
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return len(flatbuffer), tflm.smallest_arena(flatbuffer, sample)


def _nonzero(model) -> int:
    return sum(int(np.count_nonzero(w)) for w in model.get_weights())


def _layer_errors(data) -> dict:
    """quantize/layer_error.json -> {layer: (RMSE, RMSE in units of the int8 step)} of each layer's output."""
    return {row["layer"]: (row["rmse"], row.get("rmse/scale")) for row in (data or {}).get("layers", [])}


def _budget_rows(budget: dict) -> list[list]:
    """codegen/budget.json -> [memory, used, available]: flash for model and runtime; the arena in SRAM or PSRAM."""
    arena = budget["arena"]
    internal = arena["placement"] == "internal"
    return [["flash (app partition)", budget["flash"]["needed_bytes"], budget["flash"]["available_bytes"]],
            ["SRAM (tensor arena)", arena["bytes"] if internal else 0, arena["internal_available_bytes"]],
            ["PSRAM (tensor arena)", 0 if internal else arena["bytes"], arena["psram_available_bytes"]]]


def _scalars(data) -> list[list]:
    """Top-level numbers and strings of a JSON object, as [key, value] rows."""
    if not isinstance(data, dict):
        return []
    return [[k, v] for k, v in data.items() if isinstance(v, (int, float, str, bool))]


# ---- charts ---------------------------------------------------------------------------------------------

def _dataset_chart(dataset: dict, x: np.ndarray, y: np.ndarray) -> bytes:
    classes = dataset["classes"]
    fig, (counts, grid) = charts.figure(2, width=4.6)
    bottom = np.zeros(len(classes))
    for split in ("train", "val", "test"):
        values = np.array(dataset["counts"][split])
        counts.bar(range(len(classes)), values, bottom=bottom, label=split)
        bottom += values
    counts.set_xticks(range(len(classes)), classes)
    counts.set_title("samples per class")
    counts.legend(ncol=3, loc="lower center")
    samples = [x[np.flatnonzero(y == c)[0]] for c in range(len(classes)) if np.any(y == c)]
    columns = min(5, len(samples))
    rows = -(-len(samples) // columns)
    tiles = np.zeros((rows * x.shape[1], columns * x.shape[2], x.shape[3]), np.uint8)
    for index, image in enumerate(samples):
        r, c = divmod(index, columns)
        tiles[r * x.shape[1]:(r + 1) * x.shape[1], c * x.shape[2]:(c + 1) * x.shape[2]] = image
    grid.imshow(tiles[:, :, 0] if tiles.shape[2] == 1 else tiles, cmap="gray", interpolation="nearest")
    grid.set_title("one training sample per class")
    grid.axis("off")
    return charts.png(fig)


def _training_chart(history: dict) -> bytes:
    fig, (loss, accuracy) = charts.figure(2)
    for key, axis in (("loss", loss), ("accuracy", accuracy)):
        for prefix in ("", "val_"):
            if history.get(prefix + key):
                values = history[prefix + key]
                axis.plot(range(1, len(values) + 1), values, marker="o", label=prefix + key)
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
    return charts.png(fig)


def _compression_chart(rows: list[list]) -> bytes:
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


def _confusion_chart(confusion: list[list], classes: list[str]) -> bytes:
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


def _layer_chart(layers: list[dict]) -> bytes:
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


def _budget_chart(rows: list[list]) -> bytes:
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


def run(ctx) -> None:
    from ..ml.keras_util import accuracy, as_float, load_data, load_model

    config = {key: ctx.config[key] for key in ctx.stage.reads}
    dataset = _json(ctx, "dataset/dataset.json")
    data = load_data(ctx.inputs["dataset/data.npz"])
    history, metrics = _json(ctx, "train/history.json"), _json(ctx, "train/metrics.json")
    calibration = _json(ctx, "calibrate/calibration.json")
    prune_info, budget, firmware = (_json(ctx, n) for n in ("prune/prune.json", "codegen/budget.json",
                                                              "build/build.json"))
    errors = _layer_errors(_json(ctx, "quantize/layer_error.json"))
    pruning = config["compression"]["prune"] is not None

    model = load_model(ctx.inputs["train/model.h5"], "the float model")
    pruned = load_model(ctx.inputs["prune/model.h5"], "the pruned model") if pruning else model
    layers = layer_rows(model, pruned)
    sample = as_float(data["x_test"][:1])

    page = Page(f"tinyedge report: {config['project']['name']}")
    page.text(f"Board {config['board']}; int8 test accuracy {calibration['quantized_test_accuracy']:.4f} in the "
              f"TFLM runtime; model {calibration['model_bytes']:,} B; tensor arena {calibration['arena_bytes']:,} B.")

    page.section("Manifest")
    page.code(yaml.safe_dump(config, sort_keys=False))

    page.section("Data set")
    page.table(["class"] + dataset["classes"] + ["total"],
               [[split] + counts + [sum(counts)] for split, counts in dataset["counts"].items()])
    if dataset.get("skipped"):
        page.text(f"{len(dataset['skipped'])} unreadable images skipped.", absent=True)
    page.chart(_dataset_chart(dataset, data["x_train"], data["y_train"]), "class counts and sample images")

    page.section("Training")
    page.table(["model", "parameters", "epochs", "val accuracy", "test accuracy"],
               [[metrics["model"], metrics["parameters"], metrics["epochs"], metrics["val_accuracy"],
                 metrics["test_accuracy"]]])
    page.chart(_training_chart(history), "training curves")

    page.section("Compression: float → pruned → int8")
    float_bytes, float_arena = _float_footprint(model, sample)
    rows = [["float32", metrics["test_accuracy"], float_bytes, float_arena, _nonzero(model)]]
    if pruning:
        rows.append(["pruned float32", accuracy(pruned, data["x_test"], data["y_test"]),
                     *_float_footprint(pruned, sample), _nonzero(pruned)])
    rows.append([config["compression"]["quantize"]["scheme"], calibration["quantized_test_accuracy"],
                 calibration["model_bytes"], calibration["arena_bytes"], _nonzero(pruned)])
    page.table(["model", "test accuracy", "model bytes", "arena bytes", "non-zero weights"], rows)
    if not pruning:
        page.text("Pruning is off (no compression.prune): no pruned model.", absent=True)
    page.text(f"Accuracy drop float → int8: {calibration['accuracy_drop_points']} points. Float and pruned "
              "sizes and arenas are of float32 TFLite models measured in the same TFLM runtime.")
    page.chart(_compression_chart(rows), "accuracy, model bytes and arena")
    if prune_info is not None:
        before, after = prune_info.get("before", {}), prune_info.get("after", {})
        page.table(["prune.json", "value"], _scalars(prune_info))
        page.table(["measure (prune stage)", "before", "after"], [[k, v, after.get(k)] for k, v in before.items()])

    page.section("Confusion matrix (int8, test split)")
    page.chart(_confusion_chart(calibration["confusion"], dataset["classes"]), "confusion matrix")
    page.table(["true \\ predicted"] + dataset["classes"],
               [[c] + row for c, row in zip(dataset["classes"], calibration["confusion"])])

    page.section("Layers")
    page.table(["layer", "type", "output", "float params", "params", "MACs", "sparsity", "int8 RMSE",
                "RMSE/step", "int8 weight B", "activation B"],
               [[r["name"], r["type"], "x".join(map(str, r["output_shape"])), r["float_params"], r["params"],
                 r["macs"], r["sparsity"], *errors.get(r["name"], (None, None)), r["weight_bytes"],
                 r["activation_bytes"]] for r in layers])
    page.chart(_layer_chart(layers), "memory and MACs per layer")
    if not errors:
        page.text("No per-layer quantization error (quantize/layer_error.json absent).", absent=True)

    page.section("Board budget")
    if budget is not None:
        budget_rows = _budget_rows(budget)
        page.table(["memory", "used B", "available B"], budget_rows)
        page.chart(_budget_chart(budget_rows), "flash, SRAM and PSRAM budget")
    else:
        page.text("No budget: codegen did not run (codegen/budget.json absent).", absent=True)

    page.section("Firmware")
    if firmware is not None:
        page.table(["build.json", "value"], _scalars(firmware))
    else:
        page.text("No build ran (build/build.json absent): firmware size unknown.", absent=True)

    page.section("Latency (estimate)")
    macs = sum(r["macs"] for r in layers)
    clock_mhz, clock_from = ((budget["cpu_mhz"], f"cpu_mhz of boards/{budget['board']}.yaml") if budget
                             else (DEFAULT_CLOCK_MHZ, f"no codegen; {DEFAULT_CLOCK_MHZ} MHz assumed for an ESP32"))
    estimate_ms = macs / (clock_mhz * 1e6 * MACS_PER_CYCLE) * 1e3
    page.text(f"Estimate, not a measurement: {macs:,} MACs / ({clock_mhz:g} MHz × {MACS_PER_CYCLE} MAC per "
              f"cycle) ≈ {estimate_ms:.1f} ms per inference on {config['board']} (clock: {clock_from}). "
              "Optimised kernels (ESP-NN) can be several times faster; preprocessing and camera time excluded.")
    page.write(ctx.out)
    ctx.log(f"report: {len(layers)} layers, {macs:,} MACs, float {float_bytes:,} B / arena {float_arena:,} B, "
            f"int8 {calibration['model_bytes']:,} B / arena {calibration['arena_bytes']:,} B")
