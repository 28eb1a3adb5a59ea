"""What stages hand each other, each named once: a typed record per JSON artifact, a path constant per other file.

Every backend writes the same Calibration record, so the report, experiments, submissions, benchmarks and tests
read any backend's results the same way. Records are written as indented JSON in field order, so their bytes are
as deterministic as their values; optional fields that are None are left out (older artifacts stay readable).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

OMIT_NONE = {"omit_none": True}

# The artifacts that are not JSON, "stage/file": a row's `needs` and a stage's ctx.inputs[...] use these names.
DATA = "dataset/data.npz"                # the resized, split data set (x/y for train, val, test)
TRAINED_MODEL = "train/model.h5"
AUGMENTED = "train/augmented.npz"        # a few augmented training samples, for the report
FLOAT_MODEL = "prune/model.h5"           # the pruned float model (train's when pruning is off)
INT8_TFLITE = "quantize/model.tflite"    # the calibrated full-integer flatbuffer (tflm, c, micropython)
ESPDL_MODEL = "quantize/model.espdl"     # what an ESP-DL firmware loads
ESPDL_NATIVE = "quantize/model.native"   # esp-ppq's quantized graph, for its simulator
CALIBRATED_OUTPUTS = "calibrate/outputs.npy"   # int8 (test samples, output bytes): the raw outputs calibrate
#                                                measured, in test split order; `doit validate` compares with them
REPORT_PAGE = "report/report.html"


def _optional(default=None):
    return field(default=default, metadata=OMIT_NONE)


@dataclass
class Record:
    ARTIFACT: ClassVar[str]  # "stage/file"

    def to_json(self) -> str:
        plain = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if not (f.metadata.get("omit_none") and getattr(self, f.name) is None)}
        return json.dumps(plain, indent=1)

    @classmethod
    def from_json(cls, text: str):
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def file_name(cls) -> str:
        return cls.ARTIFACT.split("/", 1)[1]

    @classmethod
    def stage(cls) -> str:
        return cls.ARTIFACT.split("/", 1)[0]

    def plain(self) -> dict:
        """The fields as to_json writes them (optional ones that are None left out)."""
        return json.loads(self.to_json())


@dataclass
class Document(Record):
    """A JSON artifact whose shape belongs to its writer and its few readers (curves, per-layer tables, a memory
    plan): named here once like every record, its content read as plain data."""
    data: Any

    def to_json(self) -> str:
        return json.dumps(self.data, indent=1)

    @classmethod
    def from_json(cls, text: str):
        return cls(json.loads(text))

    def plain(self):
        return self.data


@dataclass
class DatasetSummary(Record):
    ARTIFACT: ClassVar[str] = "dataset/dataset.json"
    source: str
    classes: list[str]
    input: dict            # images: {width, height, channels}; float features: {shape, dtype}
    counts: dict           # split -> samples per class
    samples: int
    skipped: list[str]     # project-relative paths of unreadable images left out


@dataclass
class Metrics(Record):
    ARTIFACT: ClassVar[str] = "train/metrics.json"
    model: str
    parameters: int
    epochs: int
    val_accuracy: float
    test_accuracy: float
    pretrained: str | None = _optional()     # train.pretrained, when the model has a backbone to load
    gray_to_rgb: bool | None = _optional()   # gray data, RGB backbone: its first conv folded over RGB
    schedule: dict | None = _optional()      # phases (frozen, fine-tuned: epochs, trainable/frozen parameters),
    #                                          best_epoch and monitor when early stopping kept one
    kept_as_loaded: bool | None = _optional()   # train.epochs: 0 (and no fine-tuning): the model as built or loaded


@dataclass
class ModelSummary(Record):
    """A float model as the report shows it, written by the stage that has it loaded: train for the trained
    model (TrainedSummary), prune for the pruned one (this name; train's when pruning is off)."""
    ARTIFACT: ClassVar[str] = "prune/model_summary.json"
    test_accuracy: float
    nonzero_weights: int
    float_tflite_bytes: int
    float_arena_bytes: int
    layers: list[dict]     # ml.layers.weight_rows


class TrainedSummary(ModelSummary):
    ARTIFACT: ClassVar[str] = "train/model_summary.json"


@dataclass
class QuantizeSummary(Record):
    ARTIFACT: ClassVar[str] = "quantize/quantize.json"
    scheme: str
    aware: bool
    representative_samples: int
    per_class: list[int]
    ptq_test_accuracy: float | None = _optional()
    qat_test_accuracy: float | None = _optional()
    bytes: int = 0
    worst_layer: str | None = None


@dataclass
class Calibration(Record):
    """The quantized model measured with the arithmetic the firmware runs (TFLM, compiled C, a simulator)."""
    ARTIFACT: ClassVar[str] = "calibrate/calibration.json"
    quantized_test_accuracy: float
    float_test_accuracy: float
    accuracy_drop_points: float
    test_samples: int
    model_bytes: int
    arena_bytes: int
    input: dict            # {dtype, shape, scale, zero_point}
    output: dict
    operators: list[str]
    confusion: list[list[int]]
    runtime: str | None = _optional()                  # what computed the outputs, when not the TFLM runtime
    differing_samples: int | None = _optional()        # outputs that differ from the TFLM runtime's
    instructions_per_inference: int | None = _optional()

    @classmethod
    def measured(cls, predicted, labels, classes: int, float_accuracy: float, **values) -> "Calibration":
        """The record of a backend's predictions on the test split: accuracy, drop and confusion computed the
        same way for every backend. `values`: model_bytes, arena_bytes, input, output, operators, ..."""
        import numpy as np
        accuracy = float(np.mean(predicted == labels))
        confusion = np.bincount(labels * classes + predicted, minlength=classes ** 2).reshape(classes, -1)
        return cls(quantized_test_accuracy=accuracy, float_test_accuracy=float_accuracy,
                   accuracy_drop_points=round(100 * (float_accuracy - accuracy), 3), test_samples=int(len(labels)),
                   confusion=confusion.tolist(), **values)


@dataclass
class Budget(Record):
    ARTIFACT: ClassVar[str] = "codegen/budget.json"
    board: str
    chip: str
    cpu_mhz: int
    model_bytes: int
    flash: dict
    arena: dict


@dataclass
class ProjectIndex(Record):
    """codegen's firmware project: which toolchain builds it, and every file with its digest (like a DVC `.dir`
    entry). build, flash and monitor depend on this one file."""
    ARTIFACT: ClassVar[str] = "codegen/project.json"
    toolchain: str
    folder: str            # relative to the codegen stage folder
    board: str
    serial_speed: int
    files: dict[str, str]  # relative path -> XXH3-128 digest
    model_xxh3: str | None = _optional()   # XXH3-64 of the model file the firmware embeds (its INFO says the same):
    #                                        `doit validate` refuses a board carrying another
    input: dict | None = _optional()   # what the firmware is given and how it becomes the model's input tensor
    #                                    (backends.input_record): image or float features, shape, quantization


@dataclass
class BuildInfo(Record):
    ARTIFACT: ClassVar[str] = "build/build.json"
    env: str
    flash_used_bytes: int
    flash_available_bytes: int
    ram_used_bytes: int
    ram_available_bytes: int
    project: str | None = _optional()   # digest of the codegen/project.json it built: a later codegen (another
    #                                     board or backend) makes this record stale, not wrong


def document(name: str, artifact: str) -> type[Document]:
    """The Document type of one plain-JSON artifact (what ctx.read and ctx.write take), described where it is
    made below."""
    return type(name, (Document,), {"ARTIFACT": artifact, "__module__": __name__})


# Keras' history: metric name -> one value per epoch.
History = document("History", "train/history.json")
# The pruning kind and settings, and the model measured before and after (accuracy, bytes, arena, MACs).
PruneResult = document("PruneResult", "prune/prune.json")
# check's verdict: the backend, and the budget the untrained model would take on the board.
PreflightVerdict = document("PreflightVerdict", "check/check.json")
# TFLite's per-layer quantization error: {layers: [{layer, op, rmse, rmse/scale}], note?}.
LayerError = document("LayerError", "quantize/layer_error.json")
# ESP-DL's quantization: target chip, quant_type, input/output exponents, bytes.
PpqRecord = document("PpqRecord", "quantize/ppq.json")
# esp-ppq's graph-wise and layer-wise error per operator: {measure, ops: [{op, layer, graphwise, layerwise}]}.
PpqErrors = document("PpqErrors", "quantize/errors.json")
# ESP-DL's calibrate: target, quant_type and the activation memory estimate.
EspdlMemory = document("EspdlMemory", "calibrate/espdl.json")
# The C backend's calibrate: MACs, instructions per MAC, arena against TFLM's, per-operator counts.
CRuntime = document("CRuntime", "calibrate/c_runtime.json")
# doit validate's run on the board: outputs against calibrate's, latency per inference and per layer, the link.
Validation = document("Validation", "validate/validate.json")
# The C backend's arena plan: method, arena_bytes, macs, tensors (bytes, lifetime, offset), operators.
MemoryPlan = document("MemoryPlan", "codegen/memory_plan.json")
