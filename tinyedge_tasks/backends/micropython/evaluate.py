"""calibrate: the generated MicroPython package run on the whole test split in the MicroPython unix port, plain
and viper kernels, each output compared with the TFLM runtime's; the same Calibration record as every backend, and
outputs.npy: the viper kernels' raw int8 outputs (what the board runs), which `doit validate` compares the board's
with."""
from __future__ import annotations

import numpy as np

from ...artifacts import DATA, INT8_TFLITE, Calibration, Metrics, ProjectIndex
from ...errors import TinyedgeError
from ...lowering.lower import lower
from ...preprocess import transform_of
from ...tflite import model_file
from ...tflite import runtime as tflm
from . import unix

TIMEOUT = 900   # seconds per flavour: the plain kernels of the zoo MobileNet take about 0.6 s per sample here


def run(ctx) -> None:
    with np.load(ctx.inputs[DATA]) as data:
        x_test, y_test = data["x_test"], data["y_test"]
    model_bytes = ctx.inputs[INT8_TFLITE].read_bytes()
    index = ctx.read(ProjectIndex)
    folder = ctx.inputs[ProjectIndex.ARTIFACT].parent / index.folder
    files = {name: (folder / name).read_text() for name in index.files if name.endswith(".py")}

    engine = model_file.interpreter(model_bytes)
    input_details, output_details = model_file.io_details(engine)
    transform = transform_of(ctx.config["dataset.input"])
    scores = tflm.predict(engine, x_test, transform, progress=ctx.log, what="calibrate: TFLM reference outputs")
    given = x_test if x_test.dtype == np.uint8 else tflm.quantize_images(engine, x_test, transform)   # features
    reference = np.round(scores / output_details["scale"] + output_details["zero_point"]).astype(np.int8)

    differing = np.zeros(len(x_test), bool)
    outputs = {}
    for flavour in ("viper", "plain"):
        got, seconds = unix.run(files, given, flavour, TIMEOUT, f"calibrate ({flavour} kernels)")
        outputs[flavour] = got
        bad = (got != reference).any(axis=1)
        differing |= bad
        ctx.log(f"MicroPython unix port, {flavour}: {int(bad.sum())} of {len(x_test)} outputs differ from TFLM, "
                f"{seconds * 1000:.1f} ms per inference on this machine")
    if outputs["viper"].shape != reference.shape:
        raise TinyedgeError(f"calibrate: the package gave {outputs['viper'].shape[1]} outputs per sample, TFLM "
                            f"{reference.shape[1]}; rerun `doit codegen`")
    np.save(ctx.out / "outputs.npy", outputs["viper"])
    arena = lower(model_bytes).arena_size
    result = Calibration.measured(np.argmax(outputs["viper"], axis=1), y_test, reference.shape[1],
                                  ctx.read(Metrics).test_accuracy, model_bytes=len(model_bytes), arena_bytes=arena,
                                  input=input_details, output=output_details,
                                  operators=sorted({op["op"] for op in model_file.operators(model_bytes)}),
                                  runtime="micropython unix (viper)", differing_samples=int(differing.sum()))
    ctx.write(result)
    ctx.log(f"MicroPython accuracy {result.quantized_test_accuracy:.4f}, {result.differing_samples} samples differ "
            f"from TFLM (plain or viper), arena {arena} B")
