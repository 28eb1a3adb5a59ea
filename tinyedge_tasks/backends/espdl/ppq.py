"""The esp-ppq side, run only in the child process child.py starts (`python -m` with PYTHONHASHSEED fixed).

quantize: ONNX -> model.espdl (what the chip loads), model.native (the quantized graph for the simulator),
errors.json (esp-ppq's graph-wise and layer-wise error tables), ppq.json (target, scheme, input/output exponents).
simulate: the quantized graph on the test split in esp-ppq's TorchExecutor -> scores.npy, the last integer tensor
(integers.npy), and ESP-DL's memory need.
`espdl_quantize_onnx` overwrites its input with the simplified graph, so it gets a copy in a work folder.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

from ...artifacts import PpqErrors, PpqRecord
from ...errors import TinyedgeError
from ... import preprocess
from ...preprocess import to_float
from .child import error_path
from .operators import check_graph, check_onnx, keras_layer

QUANT_TYPES = {"8": "w8a8", "16": "w16a16", "w8a16": "w8a16"}   # compression.espdl.bits -> esp-ppq quant_type
CALIB_BATCH = 32
BATCH = 64
ALIGN = 16    # ESP-DL aligns every tensor buffer to 16 bytes (TensorBase::get_aligned_size)
# Operators esp-ppq fuses into the Conv/Gemm/MatMul before them: they must share its bit width.
FUSED_AFTER = frozenset({"Add", "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish",
                         "Swish", "Tanh", "BatchNormalization"})
WEIGHTED = frozenset({"Conv", "Gemm", "MatMul", "ConvTranspose"})


def sixteen_bit_ops(onnx_model, layers: list[str], layer_names: list[str]) -> list[str]:
    """ONNX node names of the named Keras layers, plus the bias/activation nodes fused into their Conv/Gemm."""
    unknown = sorted(set(layers) - set(layer_names))
    if unknown:
        raise TinyedgeError(f"tinyedge.yaml: compression.espdl.sixteen_bit_layers: no Keras layer named "
                            f"{', '.join(unknown)}; the model's layers are {', '.join(layer_names)}")
    nodes = list(onnx_model.graph.node)
    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    chosen = [node for node in nodes if keras_layer(node.name, layer_names) in layers]
    names = {node.name for node in chosen}
    for node in chosen:
        while node.op_type in WEIGHTED | FUSED_AFTER and len(node.output) == 1:
            after = consumers.get(node.output[0], [])
            if len(after) != 1 or after[0].op_type not in FUSED_AFTER:
                break
            node = after[0]
            names.add(node.name)
    return sorted(names)


def _setting(target: str, quant_type: str, method: str, sixteen_bit: list[str]):
    from esp_ppq.api.espdl_interface import get_target_platform
    from esp_ppq.api.setting import QuantizationSettingFactory

    setting = QuantizationSettingFactory.espdl_setting(num_of_bits=8 if quant_type == "w8a8" else 16)
    setting.quantize_activation_setting.calib_algorithm = method
    platform = get_target_platform(target, "w16a16")
    for name in sixteen_bit:
        setting.dispatching_table.append(name, platform)
    return setting


def _io(variable, config) -> dict:
    """A graph input/output as the firmware sees it: ESP-DL quantizes with a power-of-two exponent, no zero point."""
    import esp_ppq.core as core

    shape = [1, *variable.shape[1:]]
    if config is None or config.state == core.QuantizationStates.FP32:
        return {"dtype": "float32", "shape": shape}
    scale = float(config.scale.item())
    return {"dtype": f"int{config.num_of_bits}", "shape": shape, "scale": scale,
            "exponent": int(round(math.log2(scale))), "zero_point": 0, "rounding": config.rounding.name}


def quantize(job: dict) -> None:
    import onnx
    import torch

    out, work_dir = Path(job["out"]), Path(job["work"])
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    work = work_dir / "model.onnx"
    shutil.copyfile(job["onnx"], work)
    onnx_model = onnx.load(str(work))
    check_onnx(onnx_model, job["layer_names"], job["where"])
    sixteen_bit = sixteen_bit_ops(onnx_model, job["sixteen_bit_layers"], job["layer_names"])
    with np.load(job["data"]) as data:
        images = data["x_train"][job["indices"]]
    x = torch.from_numpy(to_float(images, tuple(job["transform"])))
    size = CALIB_BATCH if len(x) > CALIB_BATCH else max(1, (len(x) + 1) // 2)   # esp-ppq asserts >= 2 steps
    batches = [x[i:i + size] for i in range(0, len(x), size)]
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):   # esp-ppq prints a banner, progress bars and tables
        from esp_ppq.api import espdl_quantize_onnx
        from esp_ppq.api.interface import export_ppq_graph
        from esp_ppq.core import TargetPlatform
        from esp_ppq.quantization.analyse import graphwise_error_analyse
        from esp_ppq.quantization.analyse.layerwise import layerwise_error_analyse

        graph = espdl_quantize_onnx(
            onnx_import_file=str(work), espdl_export_file=str(work_dir / "model.espdl"), calib_dataloader=batches,
            calib_steps=len(batches), input_shape=[1, *images.shape[1:]], inputs=[x[:1]], target=job["target"],
            quant_type=job["quant_type"],
            setting=_setting(job["target"], job["quant_type"], job["method"], sixteen_bit),
            device="cpu", error_report=False, export_test_values=False, verbose=0)
        graphwise = graphwise_error_analyse(graph=graph, running_device="cpu", dataloader=batches,
                                            collate_fn=None, verbose=False)
        layerwise = layerwise_error_analyse(graph=graph, running_device="cpu", dataloader=batches,
                                            collate_fn=None, verbose=False)
        export_ppq_graph(graph, TargetPlatform.NATIVE, str(out / "model.native"))
    operators = check_graph(graph, job["layer_names"], job["where"])
    shutil.copyfile(work_dir / "model.espdl", out / "model.espdl")   # its side files (.info, .json) stay behind
    errors = {"measure": "noise-to-signal power ratio of each op's output on the calibration samples: graphwise "
                         "accumulates from the input, layerwise quantizes one op at a time; above 0.1 is large",
              "ops": [{"op": op, "layer": keras_layer(op, job["layer_names"]), "graphwise": float(graphwise[op]),
                       "layerwise": float(layerwise[op]) if op in layerwise else None} for op in sorted(graphwise)]}
    (out / PpqErrors.file_name()).write_text(PpqErrors(errors).to_json())
    (name_in, var_in), (name_out, var_out) = next(iter(graph.inputs.items())), next(iter(graph.outputs.items()))
    record = {"target": job["target"], "quant_type": job["quant_type"], "method": job["method"],
              "calibration_samples": len(images), "sixteen_bit_ops": sixteen_bit, "operators": operators,
              "input": {"name": name_in, **_io(var_in, var_in.dest_op_configs[0])},
              "output": {"name": name_out, **_io(var_out, var_out.source_op_config)},
              "espdl_bytes": (out / "model.espdl").stat().st_size, "activation_bytes": activation_bytes(graph)}
    (out / PpqRecord.file_name()).write_text(PpqRecord(record).to_json())


def _bytes_per_element(variable) -> int:
    import esp_ppq.core as core

    config = variable.source_op_config if variable.source_op is not None else variable.dest_op_configs[0]
    if config is None or config.state == core.QuantizationStates.FP32:
        return 4
    return config.num_of_bits // 8


def activation_bytes(graph) -> int:
    """Peak of live activation bytes along the execution order: an estimate of ESP-DL's tensor memory.

    ESP-DL's greedy planner (dl_memory_manager_greedy.cpp) places each activation, 16-byte aligned, for its
    lifetime and lets some modules write in place: in-place reuse can make it smaller, fragmentation larger.
    Parameters are not counted: they stay in flash (MODEL_LOCATION_IN_FLASH_RODATA)."""
    order = graph.topological_sort()
    step = {op.name: i for i, op in enumerate(order)}
    live = [0] * len(order)
    for variable in graph.variables.values():
        if variable.is_parameter or variable.shape is None:
            continue
        begin = step[variable.source_op.name] if variable.source_op is not None else 0
        ends = [step[op.name] for op in variable.dest_ops]
        end = max(ends) if ends and variable.name not in graph.outputs else len(order) - 1
        size = math.prod([1, *variable.shape[1:]]) * _bytes_per_element(variable)
        for i in range(begin, end + 1):
            live[i] += -(-size // ALIGN) * ALIGN
    return max(live)


def last_integer_tensor(graph) -> dict | None:
    """The last tensor ESP-DL holds as integers, which the board's outputs are computed from: the graph output when
    it is quantized, else the input of a float Softmax that ends the graph (ESP-DL's int8 and int16 Softmax take
    integers and write float32, dl_module_softmax.hpp); None when neither."""
    name, variable = next(iter(graph.outputs.items()))
    tensor = _io(variable, variable.source_op_config)
    if tensor["dtype"] != "float32":
        return {"name": name, "softmax": None, **tensor}
    op = variable.source_op
    if op.type != "Softmax":
        return None
    tensor = _io(op.inputs[0], op.config.input_quantization_config[0])
    if tensor["dtype"] == "float32":
        return None
    return {"name": op.inputs[0].name, "softmax": {"axis": int(op.attributes.get("axis", -1))}, **tensor}


def simulate(job: dict) -> None:
    """The test split as the firmware gets it (the common input table's integers, times 2^exponent, which esp-ppq's
    quantizer maps back to the same integers) -> scores.npy (the simulator's outputs) and integers.npy (the last
    integer tensor, see last_integer_tensor), simulate.json (that tensor, ESP-DL's memory need)."""
    import torch

    out = Path(job["out"])
    with np.load(job["data"]) as data:
        integers = preprocess.quantize(data["x_test"], job["input"], tuple(job["transform"]))
    x = integers.astype(np.float32) * np.float32(job["input"]["scale"])
    with contextlib.redirect_stdout(io.StringIO()):   # esp-ppq's import banner
        from esp_ppq.api.interface import load_native_graph
        from esp_ppq.executor import TorchExecutor

        graph = load_native_graph(job["native"])
        executor = TorchExecutor(graph, device="cpu")
        compared = last_integer_tensor(graph)
        names = [next(iter(graph.outputs))] + ([compared["name"]] if compared else [])
        with torch.no_grad():
            batches = [executor.forward(torch.from_numpy(x[i:i + BATCH]), output_names=names)
                       for i in range(0, len(x), BATCH)]
    np.save(out / "scores.npy", np.concatenate([batch[0].numpy() for batch in batches]))
    if compared:
        values = np.concatenate([batch[-1].numpy() for batch in batches]).reshape(len(x), -1)
        np.save(out / "integers.npy", np.round(values / compared["scale"]).astype(compared["dtype"]))
    (out / "simulate.json").write_text(json.dumps({"activation_bytes": activation_bytes(graph),
                                                   "integer_tensor": compared}))


def main(job_path: Path) -> None:
    job = json.loads(job_path.read_text())
    try:
        {"quantize": quantize, "simulate": simulate}[job["task"]](job)
    except TinyedgeError as exc:
        error_path(job_path).write_text(str(exc))
        raise SystemExit(3) from None


if __name__ == "__main__":
    main(Path(sys.argv[1]))
