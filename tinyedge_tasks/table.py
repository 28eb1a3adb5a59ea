"""The stage table: the rows every project has, around the rows of its firmware backend.

dataset → train → prune come first and report last; between them the backend's own rows (conversion, evaluation
in its reference runtime, codegen, build) in the order its DAG needs. Rows are data: adding a stage is adding a
row and a module, adding a backend is adding a folder under backends/.
"""
from __future__ import annotations

from dataclasses import replace

from .artifacts import (AUGMENTED, DATA, FLOAT_MODEL, REPORT_PAGE, TRAINED_MODEL, Budget, BuildInfo, Calibration,
                        CRuntime, DatasetSummary, History, LayerError, MemoryPlan, Metrics, ModelSummary, PpqErrors,
                        ProjectIndex, PruneResult, TrainedSummary)
from .rows import Command, Stage

TF = ("tensorflow", "tf-keras", "numpy")
TFLITE = TF + ("tensorflow-model-optimization", "tflite-micro")
PORT_PARAM = {"name": "port", "long": "port", "type": str, "default": "",
              "help": "serial port (else $TINYEDGE_PORT, firmware.port, or the only one found)"}
WORKERS_PARAM = {"name": "workers", "long": "workers", "type": int, "default": 0,
                 "help": "variants built at once (default: the number of cores)"}
BOARD_FILE = "tinyedge_tasks.config.boards:sources"  # a stage reading the board file: editing it reruns the stage

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
              ProjectIndex.ARTIFACT, MemoryPlan.ARTIFACT, BuildInfo.ARTIFACT, CRuntime.ARTIFACT),
    makes=("report.html", "report.md"), tools=("numpy", "matplotlib", "pyyaml"))

# Rows shared by the backends that run a TFLite flatbuffer (TFLM, and the code generators that start from it).
QUANTIZE_TFLITE = Stage(
    "quantize", "Convert to a full-integer TFLite model, calibrated on a representative training sample.",
    reads=("project.seed", "dataset.input", "train.batch_size", "train.learning_rate", "train.trust_model_code",
           "compression.quantize", "compression.calibrate"),
    needs=(FLOAT_MODEL, DATA), makes=("model.tflite", "quantize.json", "layer_error.json"),
    tools=TFLITE)


def build_row(doc: str, tools: tuple[str, ...], default: bool) -> Stage:
    """`doit build`: the toolchain named in codegen's project index compiles the project folder."""
    return Stage("build", doc, needs=(ProjectIndex.ARTIFACT,), makes=("build.json", "firmware.bin"), tools=tools,
                 default=default)


COMMANDS: tuple[Command, ...] = (
    Command("experiments", "Tabulate every configuration the cache holds, with the keys that differ and a "
            "Pareto chart; nothing is retrained."),
    Command("submission", "Zip the manifest, boards, tool lock, digests, report, int8 model and firmware.",
            needs=(REPORT_PAGE, Calibration.ARTIFACT),
            params=({"name": "with_data", "long": "with-data", "type": bool, "default": False,
                     "help": "also include the data set (by default only its digest)"},)),
    Command("verify-submission", "Rebuild a submission zip in a fresh folder, in a sandbox; exit non-zero if any "
            "artifact differs.", pos_arg=True,
            params=({"name": "trust", "long": "trust", "type": bool, "default": False,
                     "help": "allow a submission that runs its own Python (module:function, a model with code)"},
                    {"name": "no_sandbox", "long": "no-sandbox", "type": bool, "default": False,
                     "help": "rebuild without bubblewrap (only for submissions you trust)"})),
    Command("sweep", "Build every combination of some manifest values (-S key=v1,v2, or the sweep: section), each "
            "variant in its own folder from the one cache, in parallel; a table of the results.",
            params=({"name": "set", "short": "S", "long": "set", "type": bool, "default": False,
                     "help": "-S KEY=V1,V2: a dotted manifest key and its values (repeat for more keys)"},
                    WORKERS_PARAM)),
    Command("tune", "Search the tune: space with Optuna (needs the `tune` extra): the manifest's objectives, the "
            "board's budget as a constraint, the preflight rejecting what cannot fit before it trains.",
            params=(WORKERS_PARAM,
                    {"name": "storage", "long": "storage", "type": str, "default": "",
                     "help": "Optuna storage URL (postgresql://...), else tune.storage, else cache/tune.sqlite3; "
                             "write --storage=URL when the URL holds a '=' (doit takes name=value as a variable)"},
                    {"name": "trials", "long": "trials", "type": int, "default": 0,
                     "help": "trials the study should hold (default tune.trials); finished ones are kept"},
                    {"name": "apply", "long": "apply", "type": int, "default": -1,
                     "help": "write trial N's values into tinyedge.yaml (comments and order kept) and stop"})),
    Command("flash", "Build the firmware and upload it to the board (or run it, for an emulated board).",
            needs=(ProjectIndex.ARTIFACT,), params=(PORT_PARAM,)),
    Command("monitor", "Show the board's serial output (top classes, inference time) at its serial speed.",
            needs=(ProjectIndex.ARTIFACT,), params=(PORT_PARAM,)),
)


def stages(backend) -> tuple[Stage, ...]:
    """The project's table: the common rows, the backend's rows, and the report when the backend writes the
    calibration record the report is drawn from (every firmware backend does; a toy need not)."""
    check = replace(CHECK, hooks=(backend.preflight,)) if backend.preflight else CHECK  # calls the backend's
    rows = (DATASET, check, TRAIN, PRUNE, *backend.stages)
    calibrates = any(row.name == Calibration.stage() and Calibration.file_name() in row.makes for row in rows)
    return rows + (REPORT,) if calibrates else rows
