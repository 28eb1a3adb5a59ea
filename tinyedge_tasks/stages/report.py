"""report: one self-contained HTML page (charts embedded as PNG) and a Markdown summary of the build.

It shows what exists and says what is absent (pruning off, no codegen, no firmware build). Its bytes depend
only on its inputs (no dates, no absolute paths), so a submission can verify the report like any artifact.
"""
from __future__ import annotations

import numpy as np
import xxhash
import yaml

from ..artifacts import (AUGMENTED, DATA, Budget, BuildInfo, Calibration, CRuntime, DatasetSummary, History,
                         LayerError, MemoryPlan, Metrics, ModelSummary, PpqErrors, ProjectIndex, PruneResult,
                         TrainedSummary, Validation)
from ..report.page import (Page, augment_chart, budget_chart, budget_rows, compression_chart, confusion_chart,
                           dataset_chart, layer_chart, layer_errors, layer_rows, scalars, training_chart)

DEFAULT_CLOCK_MHZ = 240        # ESP32 (the ESP32-CAM's chip) when the board file gives no clock
MACS_PER_CYCLE = 0.25          # TFLM int8 reference kernels on a core without SIMD: a rough, stated guess


def _document(ctx, kind):
    """The content of an optional plain-JSON artifact (artifacts.Document), None when its stage made none."""
    record = ctx.read(kind, optional=True)
    return record.data if record else None


def run(ctx) -> None:
    """The page, section by section, from the artifacts the stages wrote (each section says what is absent)."""
    config = {key: ctx.config[key] for key in ctx.stage.reads}
    calibration = ctx.read(Calibration)
    trained, pruned = ctx.read(TrainedSummary), ctx.read(ModelSummary)
    layers = layer_rows(trained.layers, pruned.layers)
    budget = ctx.read(Budget, optional=True)
    page = Page(f"tinyedge report: {config['project']['name']}")
    _summary(page, config, calibration)
    page.section("Manifest")
    page.code(yaml.safe_dump(config, sort_keys=False))
    dataset = _data_set(page, ctx)
    metrics = _training(page, ctx)
    _compression(page, ctx, config, calibration, metrics, trained, pruned)
    page.section("Confusion matrix (int8, test split)")
    page.chart(confusion_chart(calibration.confusion, dataset.classes), "confusion matrix")
    page.table(["true \\ predicted"] + dataset.classes,
               [[c] + row for c, row in zip(dataset.classes, calibration.confusion)])
    _layers(page, ctx, layers)
    _budget(page, budget)
    _firmware(page, ctx)
    macs = sum(r["macs"] for r in layers)
    _speed(page, ctx, config, calibration, budget, macs)
    page.write(ctx.out)
    ctx.log(f"report: {len(layers)} layers, {macs:,} MACs, float {trained.float_tflite_bytes:,} B / arena "
            f"{trained.float_arena_bytes:,} B, int8 {calibration.model_bytes:,} B / arena "
            f"{calibration.arena_bytes:,} B")


def _summary(page: Page, config: dict, calibration: Calibration) -> None:
    runtime = calibration.runtime or "TFLM runtime"
    page.text(f"Board {config['board']}; int8 test accuracy {calibration.quantized_test_accuracy:.4f} in the "
              f"{runtime}; model {calibration.model_bytes:,} B; tensor arena {calibration.arena_bytes:,} B.")
    if calibration.differing_samples is not None:
        page.text(f"Outputs of the {runtime} differ from the TFLM runtime's on {calibration.differing_samples} "
                  f"of {calibration.test_samples} test samples.")


def _data_set(page: Page, ctx) -> DatasetSummary:
    dataset = ctx.read(DatasetSummary)
    with np.load(ctx.inputs[DATA]) as arrays:
        images, labels = arrays["x_train"], arrays["y_train"]
    page.section("Data set")
    page.table(["class"] + dataset.classes + ["total"],
               [[split] + counts + [sum(counts)] for split, counts in dataset.counts.items()])
    if dataset.skipped:
        page.text(f"{len(dataset.skipped)} unreadable images skipped.", absent=True)
    page.chart(dataset_chart(dataset.classes, dataset.counts, images, labels), "class counts and sample images")
    return dataset


def _training(page: Page, ctx) -> Metrics:
    metrics = ctx.read(Metrics)
    page.section("Training")
    kept = metrics.kept_as_loaded
    page.table(["model", "parameters", "epochs", "val accuracy", "test accuracy"],
               [[metrics.model, metrics.parameters, "0: kept as loaded" if kept else metrics.epochs,
                 metrics.val_accuracy, metrics.test_accuracy]])
    schedule = metrics.schedule
    _schedule(page, metrics, schedule)
    if kept:
        page.text("The model was kept as loaded (train.epochs: 0): not trained, so there are no training curves; "
                  "its accuracies are those of the weights it came with.", absent=True)
    else:
        page.chart(training_chart(ctx.read(History).data, schedule), "training curves")
    with np.load(ctx.inputs[AUGMENTED]) as arrays:
        augmented = arrays["x"]
    if len(augmented):
        page.chart(augment_chart(augmented), "augmented training samples")
    else:
        page.text("Augmentation is off (no dataset.augment).", absent=True)
    return metrics


def _schedule(page: Page, metrics: Metrics, schedule: dict | None) -> None:
    """What transfer learning did: the phases, the epoch kept, the backbone's weights, a gray input folded in."""
    if schedule:
        page.table(["phase", "epochs run", "trainable parameters", "frozen parameters"],
                   [[p["name"], p["epochs"], p["trainable"], p["frozen"]] for p in schedule["phases"]])
    if schedule and schedule.get("best_epoch"):
        page.text(f"Early stopping kept epoch {schedule['best_epoch']} ({schedule['monitor']} "
                  f"{schedule['best_value']:.4f}), not the last.")
    if metrics.pretrained:
        page.text(f"Backbone weights: {metrics.pretrained}.")
    if metrics.gray_to_rgb:
        page.text("The data set is grayscale and the backbone RGB: its first convolution's weights are summed over "
                  "the three channels (exact for a gray image repeated to RGB); the firmware feeds one channel.")


def _compression(page: Page, ctx, config: dict, calibration: Calibration, metrics: Metrics,
                 trained: ModelSummary, pruned: ModelSummary) -> None:
    pruning = config["compression"]["prune"] is not None
    page.section("Compression: float → pruned → int8")
    rows = [["float32", metrics.test_accuracy, trained.float_tflite_bytes, trained.float_arena_bytes,
             trained.nonzero_weights]]
    if pruning:
        rows.append(["pruned float32", pruned.test_accuracy, pruned.float_tflite_bytes, pruned.float_arena_bytes,
                     pruned.nonzero_weights])
    rows.append([config["compression"]["quantize"]["scheme"], calibration.quantized_test_accuracy,
                 calibration.model_bytes, calibration.arena_bytes, pruned.nonzero_weights])
    page.table(["model", "test accuracy", "model bytes", "arena bytes", "non-zero weights"], rows)
    if not pruning:
        page.text("Pruning is off (no compression.prune): no pruned model.", absent=True)
    page.text(f"Accuracy drop float → int8: {calibration.accuracy_drop_points} points. Float and pruned "
              "sizes and arenas are of float32 TFLite models measured in the same TFLM runtime.")
    page.chart(compression_chart(rows), "accuracy, model bytes and arena")
    prune_info = _document(ctx, PruneResult)
    if prune_info is not None:
        before, after = prune_info.get("before", {}), prune_info.get("after", {})
        page.table(["prune.json", "value"], scalars(prune_info))
        page.table(["measure (prune stage)", "before", "after"], [[k, v, after.get(k)] for k, v in before.items()])


def _layers(page: Page, ctx, layers: list[dict]) -> None:
    errors = layer_errors(_document(ctx, LayerError))
    page.section("Layers")
    page.table(["layer", "type", "output", "float params", "params", "MACs", "sparsity", "int8 RMSE",
                "RMSE/step", "int8 weight B", "activation B"],
               [[r["name"], r["type"], "x".join(map(str, r["output_shape"])), r["float_params"], r["params"],
                 r["macs"], r["sparsity"], *errors.get(r["name"], (None, None)), r["weight_bytes"],
                 r["activation_bytes"]] for r in layers])
    page.chart(layer_chart(layers), "memory and MACs per layer")
    espdl_errors = _document(ctx, PpqErrors)
    if espdl_errors is not None:
        page.table(["ESP-DL op (esp-ppq)", "Keras layer", "graph-wise error", "layer-wise error"],
                   [[row["op"], row["layer"], row["graphwise"], row["layerwise"]] for row in espdl_errors["ops"]])
        page.text(f"Error: {espdl_errors['measure']}.")
    if not errors:
        page.text("No per-layer quantization error (quantize/layer_error.json absent).", absent=True)


def _budget(page: Page, budget: Budget | None) -> None:
    page.section("Board budget")
    if budget is None:
        page.text("No budget: codegen did not run (codegen/budget.json absent).", absent=True)
        return
    memory = budget_rows(budget)
    page.table(["memory", "used B", "available B"], memory)
    page.chart(budget_chart(memory), "flash, SRAM and PSRAM budget")


def _firmware(page: Page, ctx) -> None:
    """The build's sizes, when the build is of codegen's current project; and the C backend's memory plan."""
    firmware, index = ctx.read(BuildInfo, optional=True), ctx.inputs.get(ProjectIndex.ARTIFACT)
    page.section("Firmware")
    if firmware is not None and index is not None and firmware.project != xxhash.xxh3_128_hexdigest(
            index.read_bytes()):
        page.text("The last build (build/build.json) is of another firmware project than codegen's current one "
                  "(another board or backend): run `doit build` for its size.", absent=True)
    elif firmware is not None:
        page.table(["build.json", "value"], scalars(firmware.plain()))
    else:
        page.text("No build ran (build/build.json absent): firmware size unknown.", absent=True)
    plan = _document(ctx, MemoryPlan)
    if plan is not None:
        page.section("Memory plan (tensor arena)")
        page.text(f"{plan['arena_bytes']:,} B for {len(plan['tensors'])} buffers. {plan['method']}")
        page.table(["buffer", "bytes", "offset", "first op", "last op", "shares the bytes of", "holds"],
                   [[t["tensor"], t["bytes"], t["offset"], t["first"], t["last"], _shares(t), t.get("holds", "")]
                    for t in plan["tensors"]])


def _shares(tensor: dict) -> str:
    """The tensor whose bytes a buffer shares (tensor 0 too), and where it starts from it when not at its offset."""
    if tensor["shares"] is None:
        return ""
    distance = tensor.get("shares_from", 0)
    return f"{tensor['shares']}" + (f" (from {distance:+d} B)" if distance else "")


def _speed(page: Page, ctx, config: dict, calibration: Calibration, budget: Budget | None, macs: int) -> None:
    """Instructions counted where a runtime counts them, and the latency estimate, labelled as one."""
    runtime = calibration.runtime or "TFLM runtime"
    instructions = calibration.instructions_per_inference
    if instructions:
        page.section("Instructions per inference (measured)")
        page.text(f"{instructions:,} instructions per inference, counted by {runtime} (deterministic, -icount): "
                  f"{instructions / macs:.2f} instructions per MAC over {macs:,} MACs. At one instruction per cycle "
                  f"that is {instructions / (budget.cpu_mhz * 1e3) if budget else 0:.1f} ms at the board's "
                  "clock: a lower bound, since loads and multiplies can take more than one cycle.")
        operators = (_document(ctx, CRuntime) or {}).get("layers")
        if operators:
            page.text(f"Per operator, counted by the harness's SysTick around each one in {runtime}:")
            page.table(["operator", "layer", "kernel", "MACs", "instructions", "instructions per MAC"],
                       [[r["op"], r["layer"], r["kernel"], r["macs"], r["instructions"],
                         r["instructions_per_mac"] if r["instructions_per_mac"] is not None else ""]
                        for r in operators])
    measured = _validation(ctx)
    if measured is not None:
        _measured(page, ctx, measured, macs)
        return
    page.section("Latency (estimate)")
    clock_mhz, clock_from = ((budget.cpu_mhz, f"cpu_mhz of boards/{budget.board}.yaml") if budget
                             else (DEFAULT_CLOCK_MHZ, f"no codegen; {DEFAULT_CLOCK_MHZ} MHz assumed for an ESP32"))
    estimate_ms = macs / (clock_mhz * 1e6 * MACS_PER_CYCLE) * 1e3
    page.text(f"Estimate, not a measurement: {macs:,} MACs / ({clock_mhz:g} MHz × {MACS_PER_CYCLE} MAC per "
              f"cycle) ≈ {estimate_ms:.1f} ms per inference on {config['board']} (clock: {clock_from}). "
              "Optimised kernels (ESP-NN) can be several times faster; preprocessing and camera time excluded. "
              "`doit validate` measures it on the board.")


def _validation(ctx) -> dict | None:
    """validate/validate.json when it is of the firmware codegen made now (the same model digest) and was measured
    on the project's board (not in the MicroPython unix port on this machine, whose INFO names another board)."""
    measured, index = ctx.read(Validation, optional=True), ctx.read(ProjectIndex, optional=True)
    if measured is None or index is None or measured.data["firmware"]["model_xxh3"] != index.model_xxh3:
        return None
    if measured.data["firmware"]["board"] != index.board:
        return None
    return measured.data


def _measured(page: Page, ctx, measured: dict, macs: int) -> None:
    """`doit validate`'s figures in place of the estimate: latency on the board, and cycles per operator."""
    firmware, latency = measured["firmware"], measured["latency"]
    page.section("Latency (measured on the board)")
    page.text(f"Measured by `doit validate` on {measured['board']} ({firmware['board']}, {firmware['backend']} "
              f"firmware, model_xxh3 {firmware['model_xxh3']}) on {measured['date']}: {measured['samples']} test "
              f"samples, {measured['agreeing_outputs']} outputs agree with calibrate's ({measured['comparison']}), "
              f"accuracy on the board "
              f"{measured['accuracy']:.4f}. Cycles from {firmware['cycle_counter']}, "
              f"{firmware['cycles_per_second']:,} per second; {macs:,} MACs.")
    page.table(["", "min", "median", "p95", "max"],
               [[unit] + [latency[unit][k] for k in ("min", "median", "p95", "max")] for unit in ("cycles", "ms")])
    plan = ctx.read(MemoryPlan, optional=True)
    operators = (plan.data if plan else {}).get("operators") or []
    rows = measured["layers"]
    if rows:
        same = len(operators) == len(rows)
        page.table(["operator", "layer", "MACs", "cycles (median)", "cycles per MAC"],
                   [[r["op"], operators[i]["layer"] if same else "", operators[i]["macs"] if same else "",
                     r["cycles"], round(r["cycles"] / operators[i]["macs"], 3) if same and operators[i]["macs"]
                     else ""] for i, r in enumerate(rows)])
