"""TFLM runs that may abort or segfault, each done in one child process (tinyedge_tasks.native.isolate), plus a pure-Python
check that catches the commonest abort (an untrained model's collapsed output range) before TFLM runs at all.

Parent side: check_output_range, probe, smallest_arena, predict; `sample`/`inputs` are already quantized
(runtime.model_input). The `_child_*` functions run in the child.
"""
from __future__ import annotations

import struct

import numpy as np

from ..native import isolate
from ..errors import TinyedgeError
from . import model_file

DEGENERATE_SCALE = 1e-6  # an int8 scale this small spans +-1e-4: no trained network's logits live there
SCORE_INPUTS = {"SOFTMAX", "LOG_SOFTMAX", "LOGISTIC"}  # ops whose input is the logits
ARENA_REFUSALS = ("Failed to allocate", "Failed to resize buffer", "missing:")  # TFLM: the arena is too small
MAX_CRASHES = 8  # arena probes that crash TFLM and are counted as too small before the search gives up
TIMEOUT = 600.0  # seconds for one child: the example needs ~1 s

isolate.preload(["numpy", "tflite_micro.python.tflite_micro.runtime", __name__])


def _layer(name: str) -> str:
    return name.split(";")[0]


def check_output_range(model_bytes: bytes, where: str) -> None:
    """Refuse a model whose logits have a near-zero quantization scale: TFLM's SOFTMAX aborts on it (its
    multiplier underflows), and an untrained network whose activations die out produces exactly that."""
    schema = model_file.flatbuffer_schema()
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)

    def scale(index: int) -> float | None:
        quant = graph.Tensors(index).Quantization()
        return float(quant.ScaleAsNumpy().min()) if quant is not None and quant.ScaleLength() else None

    ops = model_file.operators(model_bytes)
    logits = [(graph.Operators(i).Inputs(0), f"the input of {op['op']}") for i, op in enumerate(ops)
              if op["op"] in SCORE_INPUTS]
    logits += [(graph.Outputs(i), "a model output") for i in range(graph.OutputsLength())]
    for tensor, role in logits:
        layer = f"{_layer(graph.Tensors(tensor).Name().decode())} ({role})"
        found = scale(tensor)
        if found is not None and found < DEGENERATE_SCALE:
            first = next(op["layer"] for i, op in enumerate(ops)
                         if (s := scale(graph.Operators(i).Outputs(0))) is not None and s < DEGENERATE_SCALE)
            raise TinyedgeError(
                f"{where}: the model's output range is degenerate (scale {found:.2g} at layer {layer}; "
                f"activations fall below {DEGENERATE_SCALE:g} from layer {_layer(first)} on): TFLM cannot run "
                "it and it could not classify anything. Is it untrained? Train it first (train.epochs > 0)")


def measurable(model_bytes: bytes) -> bytes:
    """A copy whose degenerate scales (an untrained model's) are set to 1/256: the arena and the operators do
    not depend on scale values, and TFLM's SOFTMAX would abort on the real ones. For the preflight only."""
    graph = model_file.main_graph(model_bytes)
    data = bytearray(model_bytes)
    for index in range(graph.TensorsLength()):
        quant = graph.Tensors(index).Quantization()
        if quant is None or not quant.ScaleLength():
            continue
        start = quant._tab.Vector(quant._tab.Offset(8))  # QuantizationParameters.scale
        for i in range(quant.ScaleLength()):
            if 0 < quant.Scale(i) < DEGENERATE_SCALE:
                struct.pack_into("<f", data, start + 4 * i, 1 / 256)
    return bytes(data)


def probe(model_bytes: bytes, sample: np.ndarray, what: str, arena: int = model_file.PROBE_ARENA) -> str | None:
    """Allocate and run one sample in `arena` bytes: None if it runs, TFLM's refusal if it fails cleanly; a
    crash raises a TinyedgeError naming the signal and the operator being set up or run."""
    try:
        return isolate.call(f"{__name__}:_child_probe", model_bytes, sample[:1], arena, what=what, timeout=TIMEOUT)
    except isolate.NativeCrash as crash:
        raise _explained(crash, model_bytes, sample[:1], arena, what) from None


def arena_refused(problem: str) -> bool:
    """TFLM's refusal says the arena is too small (not that an operator or a type is missing)."""
    return any(words in problem for words in ARENA_REFUSALS)


def over_ceiling(what: str, problem: str) -> TinyedgeError:
    """A model whose arena exceeds the probe ceiling: a budget error with the numbers, not a runtime fault."""
    return TinyedgeError(
        f"{what}: the model needs more than {model_file.PROBE_ARENA} bytes ({model_file.PROBE_ARENA / 2**20:g} MiB) of "
        f"tensor arena, more RAM than a microcontroller board offers (TFLM: {problem}); make the activations "
        "smaller: a smaller train.width_multiplier or dataset.input, or fewer filters in the first layers")


def smallest_arena(model_bytes: bytes, sample: np.ndarray, what: str,
                   progress=None) -> tuple[int, list[str]]:
    """(least arena in 16-byte steps that runs the first sample, notes on probes where TFLM crashed).

    TFLM segfaults on some too-small arenas (UNIDIRECTIONAL_SEQUENCE_LSTM) instead of refusing them: such a
    probe is counted as too small and the search goes on in a new child from the bounds it had reached."""
    problem = probe(model_bytes, sample, f"{what} (ample {model_file.PROBE_ARENA}-byte arena)")
    if problem and arena_refused(problem):
        raise over_ceiling(what, problem)
    if problem:
        raise TinyedgeError(f"{what}: the model converts but does not run in TFLM ({problem}); its operators: "
                            f"{', '.join(sorted({op['op'] for op in model_file.operators(model_bytes)}))}. Replace the "
                            "layer TFLM names with one it runs in that type, or choose another "
                            "compression.quantize.scheme")
    low, high, notes = None, model_file.PROBE_ARENA, []
    while True:
        try:
            return isolate.call(f"{__name__}:_child_search", model_bytes, sample[:1], low, high, what=what,
                                timeout=TIMEOUT, progress=progress), notes
        except isolate.NativeCrash as crash:
            if crash.value is None or len(notes) >= MAX_CRASHES:
                raise
            low = crash.value
            notes.append(f"TFLM crashed ({crash.signal_name}) with a {low}-byte arena; counted as too small")


def predict(model_bytes: bytes, arena: int, inputs: np.ndarray, what: str, progress=None) -> np.ndarray:
    """Dequantized class scores of quantized inputs, in a child; progress lines go live to `progress`."""
    try:
        return isolate.call(f"{__name__}:_child_predict", model_bytes, arena, inputs, what=what, timeout=TIMEOUT,
                            progress=progress)
    except isolate.NativeCrash as crash:
        raise _explained(crash, model_bytes, inputs[:1], arena, what) from None


def _explained(crash: isolate.NativeCrash, model_bytes: bytes, image: np.ndarray, arena: int,
               what: str) -> TinyedgeError:
    """The crash message plus the operator that crashes: the model cut after 1, 2, ... operators, each set up
    and run in turn in one more child, until it dies (TFLM's abort in Prepare prints nothing to name it).
    Only in the ample arena: in a small one the crash may depend on the arena size, and a cut model, which
    needs less, would blame the wrong operator; then the crash message and TFLM's lines are all that is known."""
    if crash.signal_name is None or arena != model_file.PROBE_ARENA:
        return crash
    try:
        found = isolate.call(f"{__name__}:_child_first_failing", model_bytes, image, arena,
                             what=f"{what}: finding the operator that crashes", timeout=TIMEOUT)
        culprit = f"Set up one by one, TFLM refuses operator {found}" if found else "Cut after any operator, it runs"
    except isolate.NativeCrash as again:
        culprit = (f"Set up one by one in the same arena, it dies when {again.step} is added" if again.step
                   else "Which operator crashes is unknown")
    return TinyedgeError(f"{crash}. {culprit}")


def _truncated(model_bytes: bytes, count: int) -> bytes:
    """The model cut after its first `count` operators, the last one's output as its only output: two vector
    lengths and one index patched in a copy of the FlatBuffer (TFLM prepares and runs operators in order)."""
    graph = model_file.main_graph(model_bytes)
    table = graph._tab
    operators, outputs = table.Vector(table.Offset(10)), table.Vector(table.Offset(8))  # SubGraph fields 3, 2
    data = bytearray(model_bytes)
    struct.pack_into("<I", data, operators - 4, count)
    struct.pack_into("<Ii", data, outputs - 4, 1, graph.Operators(count - 1).Outputs(0))
    return bytes(data)


def _runs(model_bytes: bytes, arena: int, sample: np.ndarray | None) -> str | None:
    """None if TFLM allocates (and, given a sample, runs it) in `arena` bytes, else what it said (a clean
    failure). Allocation alone is what the arena size decides (kernels ask for their scratch in Prepare), and it
    costs no inference: a large model's search probes allocation only and runs once at the size it found."""
    with isolate.said() as said:
        try:
            engine = model_file.tflm(model_bytes, arena)
            if sample is not None:
                engine.set_input(sample, 0)
                engine.invoke()
            return None
        except RuntimeError as exc:
            problem = str(exc)
    return f"{problem}: {'; '.join(said[-3:])}"


def _child_probe(model_bytes: bytes, sample: np.ndarray, arena: int) -> str | None:
    isolate.step(f"allocating and running the model in a {arena}-byte arena", arena)
    return _runs(model_bytes, arena, sample)


def _child_search(model_bytes: bytes, sample: np.ndarray, low: int | None, high: int) -> int:
    """Bisection between a size that fails (None: not known yet) and one that runs: on allocation first, then
    one run at the size found; should that run fail, the search goes on above it running the sample each time."""
    if low is None:
        isolate.step(f"trying a {model_file.ARENA_FLOOR}-byte arena", model_file.ARENA_FLOOR)
        if _runs(model_bytes, model_file.ARENA_FLOOR, sample) is None:
            return model_file.ARENA_FLOOR
        low = model_file.ARENA_FLOOR
    found = _bisect(model_bytes, None, low, high)
    isolate.step(f"running the model in the {found}-byte arena found", found)
    return found if _runs(model_bytes, found, sample) is None else _bisect(model_bytes, sample, found, high)


def _bisect(model_bytes: bytes, sample: np.ndarray | None, low: int, high: int) -> int:
    while high - low > model_file.ARENA_STEP:
        middle = (low + high) // 2 // model_file.ARENA_STEP * model_file.ARENA_STEP
        if middle <= low:
            break
        isolate.step(f"trying a {middle}-byte arena", middle)
        low, high = (low, middle) if _runs(model_bytes, middle, sample) is None else (middle, high)
    return high


def _child_predict(model_bytes: bytes, arena: int, inputs: np.ndarray) -> np.ndarray:
    isolate.step(f"allocating the model in a {arena}-byte arena")
    engine = model_file.tflm(model_bytes, arena)
    isolate.step(f"running {len(inputs)} inputs")
    _, out = model_file.io_details(model_file.interpreter(model_bytes, arena))
    return model_file.invoke_all(engine, inputs, out, isolate.report)


def _child_first_failing(model_bytes: bytes, image: np.ndarray, arena: int) -> str | None:
    """Set up and run the model cut after each operator in turn; the crash's last step names the culprit."""
    for index, op in enumerate(model_file.operators(model_bytes)):
        name = f"{index} {op['op']} (layer {_layer(op['layer'])})"
        isolate.step(f"operator {name}")
        problem = _runs(_truncated(model_bytes, index + 1), arena, image)
        if problem:
            return f"{name}: {problem}"
    return None
