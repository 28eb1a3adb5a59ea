"""The tensor-arena bytes ESP-NN adds on the chip over the reference kernels the host runtime measures.

The host TFLM runtime (PyPI tflite-micro) runs the reference kernels; on the chip, esp-tflite-micro's ESP-NN kernels
ask the arena for one extra scratch buffer per layer in Prepare. Their sizes, from the pinned sources:

- TFLM side, esp-tflite-micro 1.3.8 tensorflow/lite/micro/kernels/esp_nn/: conv.cc:132-162 and depthwise_conv.cc:
  256-287 call esp_nn_get_(depthwise_)conv_scratch_size with input (w, h, c), filter (w, h), output channels,
  stride and TFLM's own padding (op_data.padding); softmax.cc:151-162 calls esp_nn_get_softmax_scratch_size with
  input dims[1]; fully_connected.cc, pooling.cc, add.cc and mul.cc request no ESP-NN scratch.
- esp-nn 1.2.0 (1.1.2 has the same sizes): esp_nn.h selects esp_nn_esp32s3.h on the ESP32-S3 and
  esp_nn_generic_opt.h on the other chips (CONFIG_NN_OPTIMIZED, the default).
  Generic (ESP32): src/convolution/esp_nn_conv_opt.c:19-25 and esp_nn_depthwise_conv_opt.c:18-24 return 0;
  src/softmax/esp_nn_softmax_opt.c:29-33 returns width * 4.
  ESP32-S3: src/convolution/esp_nn_conv_esp32s3.c:98-145 (conv), esp_nn_depthwise_conv_s8_esp32s3.c:356-407
  (depthwise), softmax as above.

Each buffer is a non-persistent arena allocation that lives during its layer only; the planner can overlap it with
dead tensors, so the sum over layers (each rounded up to the 16-byte arena alignment) is an upper bound.
"""
from __future__ import annotations

from tinyedge_tasks.errors import TinyedgeError

ESP_NN_VERSION = "1.2.0~1"  # tag v1.2.0, as codegen.COMPONENTS pins it
CHIPS = ("esp32", "esp32s3")
ARENA_ALIGN = 16


def _padding(size: int, filter_size: int, stride: int, dilation: int, same: bool) -> tuple[int, int]:
    """(output size, leading padding) as TFLM computes them (tensorflow/lite/kernels/padding.h)."""
    effective = (filter_size - 1) * dilation + 1
    out = (size + stride - 1) // stride if same else (size + stride - effective) // stride
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2


def conv_scratch_s3(in_w: int, in_h: int, in_c: int, f_w: int, f_h: int, out_c: int,
                    pad_w: int, pad_h: int, stride_w: int, stride_h: int) -> int:
    """esp_nn_get_conv_scratch_size_esp32s3 (esp-nn 1.2.0 esp_nn_conv_esp32s3.c:98-145)."""
    align = 32
    if f_w == 1 and f_h == 1 and pad_w == 0 and pad_h == 0 and stride_w == 1 and stride_h == 1:
        channels = (in_c + 7) & ~7
        transpose = 0 if in_w * in_h < 8 else 2 * 8 * channels
        inputs = in_w * in_h * channels if in_c % 8 else 0
        return inputs + channels * out_c + transpose + align
    channels = (in_c + 15) & ~15
    inputs = 0 if pad_w == 0 and pad_h == 0 else (in_w + 2 * pad_w) * (in_h + 2 * pad_h) * in_c
    return inputs + f_w * f_h * channels * out_c + align + out_c * 4


def depthwise_scratch_s3(in_w: int, in_h: int, channels: int, f_w: int, f_h: int, mult: int, out_w: int,
                         out_h: int, pad_w: int, pad_h: int, stride_w: int, stride_h: int) -> int:
    """esp_nn_get_depthwise_conv_scratch_size_esp32s3 (esp-nn 1.2.0 esp_nn_depthwise_conv_s8_esp32s3.c:356-407)."""
    filter_size = f_w * f_h * channels * mult
    if mult == 1 and channels % 8 == 0 and f_w == 3 and f_h == 3:
        if channels % 16 == 0:
            if pad_w or pad_h:
                extra_w, extra_h = pad_w * 2, pad_h * 2
            else:
                extra_w = out_w * stride_w + f_w - 1 - in_w
                extra_h = out_h * stride_h + f_h - 1 - in_h
            if extra_w or extra_h:
                return filter_size + (in_w + extra_w) * (in_h + extra_h) * channels + 16
            return filter_size + 16
        return 2 * (filter_size + in_w * in_h * channels) + 32
    if mult % 4 == 0:
        return 2 * (filter_size + in_w * in_h * channels) + 32
    return 32


def espnn_scratch(model_bytes: bytes, chip: str) -> list[dict]:
    """Each layer's ESP-NN scratch request on `chip`: [{op, layer, bytes}] for the layers that ask for one."""
    if chip not in CHIPS:
        raise TinyedgeError(f"board chip '{chip}': ESP-NN scratch sizes are known for {', '.join(CHIPS)} only; "
                            "size the arena with firmware.arena_margin for this chip")
    from tinyedge_tasks.lowering.graph import read_graph

    graph = read_graph(model_bytes)
    found = []
    for op in graph.operators:
        tensor = graph.tensors[op.inputs[0]]
        int8 = tensor.dtype == "INT8"
        size = 0
        if op.name == "SOFTMAX" and int8:
            size = tensor.shape[1] * 4  # esp_nn_softmax_opt.c:29-33 on every chip
        elif op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") and int8 and chip == "esp32s3":
            size = _conv_scratch_s3(op, tensor.shape, graph.tensors[op.inputs[1]].shape)
        if size:
            found.append({"op": op.name, "layer": op.layer, "bytes": size})
    return found


def _conv_scratch_s3(op, shape: tuple[int, ...], filters: tuple[int, ...]) -> int:
    """`filters`: conv [out, h, w, in]; depthwise [1, h, w, out]."""
    _, in_h, in_w, in_c = shape
    f_h, f_w = filters[1], filters[2]
    options = op.options
    stride_w, stride_h = options["stride_w"], options["stride_h"]
    same = options["padding"] == "SAME"
    out_w, pad_w = _padding(in_w, f_w, stride_w, options["dilation_w_factor"], same)
    out_h, pad_h = _padding(in_h, f_h, stride_h, options["dilation_h_factor"], same)
    if op.name == "CONV_2D":
        return conv_scratch_s3(in_w, in_h, in_c, f_w, f_h, filters[0], pad_w, pad_h, stride_w, stride_h)
    return depthwise_scratch_s3(in_w, in_h, in_c, f_w, f_h, options["depth_multiplier"], out_w, out_h, pad_w, pad_h,
                                stride_w, stride_h)


def arena_extra_bytes(model_bytes: bytes, chip: str) -> int:
    """Upper bound of the arena ESP-NN adds on `chip`: every scratch request, each rounded up to 16 bytes."""
    return sum(-(-entry["bytes"] // ARENA_ALIGN) * ARENA_ALIGN for entry in espnn_scratch(model_bytes, chip))
