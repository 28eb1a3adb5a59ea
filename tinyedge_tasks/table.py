"""The stage table: the rows every project has, around the rows of its firmware backend (the command rows are
the commands package's).

dataset → train → prune come first and report last; between them the backend's own rows (conversion, evaluation
in its reference runtime, codegen, build) in the order its DAG needs. Rows are data: adding a stage is adding a
row and a module, adding a backend is adding a folder under backends/.
"""
from __future__ import annotations

from dataclasses import replace

from .artifacts import (AUGMENTED, DATA, FLOAT_MODEL, TRAINED_MODEL, Budget, BuildInfo, Calibration,
                        CRuntime, DatasetSummary, History, LayerError, MemoryPlan, Metrics, ModelSummary, PpqErrors,
                        ProjectIndex, PruneResult, TrainedSummary, Validation)
from .rows import Stage

TF = ("tensorflow", "tf-keras", "numpy")
TFLITE = TF + ("tensorflow-model-optimization", "tflite-micro")
BOARD_FILE = "tinyedge_tasks.config.boards:sources"  # a stage reading the board file: editing it reruns the stage
# The ESP-IDF shell's files, read by every codegen that writes an ESP-IDF project: editing them reruns it.
ESP_IDF_SHELL = ("toolchains/esp_idf_templates", "toolchains/esp_idf_shell", "firmware")

DATASET = Stage(
    "dataset", "Read the data set, resize it to the model input, split train/val/test by sample hash.",
    reads=("project.seed", "dataset"), makes=("data.npz", "dataset.json"), tools=("numpy", "pillow", "scikit-learn"),
    sources="tinyedge_tasks.stages.dataset:sources", watch="tinyedge_tasks.stages.dataset:watched")
CHECK = Stage(
    "check", "Preflight in seconds: the untrained model's operators on the backend, its bytes and arena on the board.",
    reads=("project.seed", "dataset.input", "train.model", "train.width_multiplier", "train.trust_model_code",
           "compression.quantize.scheme", "compression.espdl", "board", "firmware.backend", "firmware.arena_margin"),
    needs=(DATA, DatasetSummary.ARTIFACT), makes=("check.json",), tools=TFLITE,
    sources="tinyedge_tasks.stages.check:sources",
    default=False)
TRAIN = Stage(
    "train", "Build (zoo, user function or file) and train the float model; write metrics and history.",
    reads=("project.seed", "dataset.input", "dataset.augment", "train"),
    needs=(DATA, DatasetSummary.ARTIFACT),
    makes=("model.h5", "metrics.json", "history.json", "model_summary.json", "augmented.npz"), tools=TFLITE,
    sources="tinyedge_tasks.ml.model_spec:files",
    setup=("check",))  # the preflight runs first whenever training does; a board change alone reruns neither
PRUNE = Stage(
    "prune", "Prune the float model (magnitude or filter pruning) and fine-tune it.",
    reads=("project.seed", "dataset.input", "train.batch_size", "train.learning_rate", "train.trust_model_code",
           "compression.prune"),
    needs=(TRAINED_MODEL, DATA), makes=("model.h5", "prune.json", "model_summary.json"),
    tools=TFLITE, enabled_by="compression.prune",
    passthrough={"model.h5": TRAINED_MODEL, "model_summary.json": TrainedSummary.ARTIFACT})
REPORT = Stage(
    "report", "A self-contained HTML report and a Markdown summary of everything built so far.",
    reads=("project", "dataset", "train", "compression", "board", "firmware"),
    needs=(DatasetSummary.ARTIFACT, DATA, History.ARTIFACT, Metrics.ARTIFACT,
           TrainedSummary.ARTIFACT, AUGMENTED, ModelSummary.ARTIFACT, Calibration.ARTIFACT),
    optional=(PruneResult.ARTIFACT, LayerError.ARTIFACT, PpqErrors.ARTIFACT, Budget.ARTIFACT,
              ProjectIndex.ARTIFACT, MemoryPlan.ARTIFACT, BuildInfo.ARTIFACT, CRuntime.ARTIFACT,
              Validation.ARTIFACT),
    makes=("report.html", "report.md"), tools=("numpy", "matplotlib", "pyyaml"))

# Rows shared by the backends that run a TFLite flatbuffer (TFLM, and the code generators that start from it).
QUANTIZE_TFLITE = Stage(
    "quantize", "Convert to a full-integer TFLite model, calibrated on a representative training sample.",
    reads=("project.seed", "dataset.input", "train.batch_size", "train.learning_rate", "train.fine_tune",
           "train.trust_model_code", "compression.quantize", "compression.calibrate"),
    needs=(FLOAT_MODEL, DATA), makes=("model.tflite", "quantize.json", "layer_error.json"),
    tools=TFLITE)


def build_row(doc: str, tools: tuple[str, ...], default: bool) -> Stage:
    """`doit build`: the toolchain named in codegen's project index compiles the project folder."""
    return Stage("build", doc, needs=(ProjectIndex.ARTIFACT,), makes=("build.json", "firmware.bin"), tools=tools,
                 default=default)


def stages(backend) -> tuple[Stage, ...]:
    """The project's table: the common rows, the backend's rows, and the report when the backend writes the
    calibration record the report is drawn from (every firmware backend does; a toy need not)."""
    # The preflight quantizes as the backend's quantize row does: that row's tools are the check's too (esp-ppq's
    # version for ESP-DL), so a new version reruns it.
    quantize_tools = next((row.tools for row in backend.stages if row.name == "quantize"), ())
    tools = CHECK.tools + tuple(tool for tool in quantize_tools if tool not in CHECK.tools)
    check = replace(CHECK, hooks=(backend.preflight,), tools=tools) if backend.preflight else CHECK
    rows = (DATASET, check, TRAIN, PRUNE, *backend.stages)
    calibrates = any(row.name == Calibration.stage() and Calibration.file_name() in row.makes for row in rows)
    return rows + (REPORT,) if calibrates else rows
