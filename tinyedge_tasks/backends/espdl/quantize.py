"""quantize (espdl): the float (or pruned) Keras model -> ONNX (checked against Keras with onnxruntime) ->
model.espdl with esp-ppq, for the chip the board file names (`esp_idf.target`).

esp-ppq runs in a child process (child.py). Unsupported operators stop here, naming the Keras layer: esp-ppq
would export them as float and the chip would refuse the model at load time. Imported to make tasks (sources()):
TensorFlow, ONNX and esp-ppq are imported inside run().
"""
from __future__ import annotations

import time
from pathlib import Path

from ...artifacts import DATA, FLOAT_MODEL, PpqRecord
from ...config import boards
from ...errors import TinyedgeError
from .. import board_section
from . import BACKEND, settings

CHECK_SAMPLES = 64   # test samples the ONNX graph is compared with Keras on
EXTRA = ("torch", "esp_ppq", "tf2onnx", "onnx", "onnxruntime", "onnxsim")


def require_extra() -> None:
    """esp-ppq needs PyTorch and the ONNX tools, which only the `espdl` extra installs."""
    import importlib.util
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise TinyedgeError(
            f"firmware.backend espdl needs {', '.join(missing)}, which are not installed; install the extra: "
            "`pip install torch==2.13.0` first (a CPU build; see README, 'ESP-DL backend'), then "
            "`pip install 'tinyedge[espdl]'`")


def target(ctx) -> str:
    board = boards.load(ctx.sources[0])
    board_section(BACKEND, board)
    return board.esp_idf.target


def esp_ppq(ctx, onnx_path, out, indices: list[int], chip: str, layer_names: list[str], where: str,
            what: str) -> dict:
    """esp-ppq in its child on `onnx_path` with the training samples `indices`, with compression.espdl's knobs:
    model.espdl, model.native, errors.json and ppq.json in `out`; returns ppq.json. Quantize and the preflight
    run it alike, so both see the same bytes and activations."""
    from ...preprocess import transform_of
    from .child import run_child
    from .ppq import QUANT_TYPES

    knobs = settings(ctx.config)
    work = ctx.state / "espdl" / f"{ctx.stage.name}-work"
    job = {"task": "quantize", "onnx": str(onnx_path), "out": str(out), "work": str(work),
           "data": str(ctx.inputs[DATA]), "indices": indices, "target": chip,
           "quant_type": QUANT_TYPES[knobs.bits], "method": knobs.method,
           "sixteen_bit_layers": knobs.sixteen_bit_layers, "layer_names": layer_names, "where": where,
           "transform": list(transform_of(ctx.config["dataset.input"]))}
    run_child(job, ctx.state / "espdl" / f"{ctx.stage.name}.json", what)
    return PpqRecord.from_json((Path(out) / PpqRecord.file_name()).read_text()).data


def run(ctx) -> None:
    import onnx

    from ...ml.keras_util import deterministic, load_data, load_model
    from ...ml.sampling import representative_indices
    from ...preprocess import transform_of
    from .onnx_export import compare_with_keras, export
    from .operators import check_onnx
    from .ppq import QUANT_TYPES

    require_extra()
    chip = target(ctx)
    knobs = settings(ctx.config)
    seed = ctx.config["project.seed"]
    deterministic(seed)
    data = load_data(ctx.inputs[DATA])
    model = load_model(ctx.inputs[FLOAT_MODEL], "the float model", ctx.config["train.trust_model_code"])
    layer_names = [layer.name for layer in model.layers]
    where = f"quantize: the {ctx.config['train.model']} model"

    onnx_path = ctx.out / "model.onnx"
    exported, seconds = export(model, onnx_path, where)
    check_onnx(onnx.load(str(onnx_path)), layer_names, where)
    transform = transform_of(ctx.config["dataset.input"])
    checked = compare_with_keras(model, onnx_path, data["x_test"][:CHECK_SAMPLES], transform)
    ctx.log(f"ONNX opset {exported['opset']} in {seconds:.1f} s: max |ONNX - Keras| "
            f"{checked['max_abs_diff']:.2e}, argmax agreement {checked['argmax_agreement']:.3f} on "
            f"{checked['samples']} test samples")
    if checked["argmax_agreement"] < 1.0:
        raise TinyedgeError(f"{where}: the ONNX graph disagrees with Keras on {1 - checked['argmax_agreement']:.1%} "
                            "of the test samples checked (tf2onnx mis-exported a layer); report it as a tinyedge "
                            "bug with the model, or use firmware.backend: tflm")

    calibrate = ctx.config["compression.calibrate"]
    indices = representative_indices(data["y_train"], calibrate["samples"], calibrate["stratified"], seed)
    ctx.log(f"esp-ppq: {chip}, {QUANT_TYPES[knobs.bits]}, {knobs.method} on {len(indices)} training samples"
            + (f", 16-bit layers {', '.join(knobs.sixteen_bit_layers)}" if knobs.sixteen_bit_layers else ""))
    started = time.perf_counter()
    record = esp_ppq(ctx, onnx_path, ctx.out, indices.tolist(), chip, layer_names, where,
                     "quantize: esp-ppq on build/quantize/model.onnx")
    record.update(layer_names=layer_names, onnx={**exported, **checked})
    ctx.write(PpqRecord(record))
    ctx.log(f"model.espdl: {record['espdl_bytes']} bytes ({time.perf_counter() - started:.1f} s in the child); "
            f"input {record['input']['dtype']} 2^{record['input'].get('exponent')}")
