"""Print a lowered int8 model as self-contained C99: model.h, model.c and the kernels it calls.

No interpreter, no allocation, nothing beyond <stdint.h> and <string.h> (and <arm_acle.h> on DSP cores); the
arithmetic lives in the hand-written kernels/ files, every parameter in the lowered model (tinyedge_tasks/lowering).
Every kernel but SOFTMAX and PAD is inline: each layer passes a static const parameter
block, which the compiler folds into code specialised to that layer's shapes, offsets and flags. Here the
lowered parameters get the C kernels' layout (conv weight rows zero padded to a multiple of 4) and the `fast`
flag: whether te_output's short path is exact for the layer (every shift negative, |accumulator| < 2^30), whose
shifts are then stored as e - 1 (e = -shift)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...lowering.lower import ConstArray, LoweredModel, LoweredOp, lower
from ...lowering.plan import ALIGNMENT

KERNELS = Path(__file__).parent / "kernels"
COMMON = ("te_kernels.h", "te_fixed_point.h")
KERNEL_FILE = {"conv2d": "te_conv2d.h", "depthwise_conv2d": "te_depthwise_conv2d.h",
               "fully_connected": "te_fully_connected.h", "max_pool": "te_pool.h", "average_pool": "te_pool.h",
               "mean": "te_mean.h", "add": "te_add.h", "softmax": "te_softmax.c", "pad": "te_pad.c"}
PARAMS_TYPE = {"conv2d": "te_conv_params", "depthwise_conv2d": "te_conv_params",
               "fully_connected": "te_fully_connected_params", "max_pool": "te_pool_params",
               "average_pool": "te_pool_params", "mean": "te_mean_params", "add": "te_add_params",
               "softmax": "te_softmax_params", "pad": "te_pad_params"}
C_TYPE = {np.dtype(np.int8): "int8_t", np.dtype(np.int32): "int32_t"}
INLINE = ("conv2d", "depthwise_conv2d", "fully_connected")
FAST_LIMIT = 1 << 30   # te_output's short path needs |accumulator| < 2^30
ROW3_ROWS = 8          # te_conv2d.h's TE_ROW3_ROWS


def _fast(params: dict) -> int:
    """1 when every shift is negative and no accumulator can reach 2^30: |bias| + 128 * sum |w| per channel."""
    shifts, bias = params["shifts"].values, params["bias"].values.astype(np.int64)
    weights = np.abs(params["weights"].values.astype(np.int64))
    sums = weights.reshape(-1, len(bias)).sum(axis=0) if params.get("depth_multiplier") else \
        weights.reshape(len(bias), -1).sum(axis=1)
    return int(bool((shifts < 0).all()) and int((np.abs(bias) + 128 * sums).max()) < FAST_LIMIT)


def _row3(op: LoweredOp) -> bool:
    """A convolution te_conv_row3 runs: one input channel, 3 taps wide at stride and dilation 1 across, its pass's
    input rows (a pool window's, or one output row's) within ROW3_ROWS and a pool window at most 4 wide."""
    if op.kernel != "conv2d":
        return False
    p, pool = op.params, op.params.get("then")
    block_h, block_w = (pool["k_h"], pool["k_w"]) if pool else (1, 2)
    return (p["in_c"], p["k_w"], p["stride_w"], p["dil_w"]) == (1, 3, 1, 1) and block_w <= 4 and \
        (block_h - 1) * p["stride_h"] + (p["k_h"] - 1) * p["dil_h"] + 1 <= ROW3_ROWS


def _channels(params: dict) -> np.ndarray:
    """te_conv_row3's record per output channel: per kernel row (w0, w2) as the low and high int16 halves of a word
    (SMLAD's pair) and w1 alone, then the bias, multiplier and shift (one of each repeated when per tensor)."""
    w = params["weights"].values.reshape(params["out_c"], -1, 3).astype(np.int64)
    taps = np.stack([(w[..., 0] & 0xFFFF) | (w[..., 2] << 16), w[..., 1]], axis=-1).reshape(len(w), -1)
    quant = [np.broadcast_to(params[key].values, len(w)) for key in ("bias", "multipliers", "shifts")]
    return np.column_stack([taps, *quant]).astype(np.int32)


def _depth(op: LoweredOp) -> int:
    """A conv's im2col depth: k_h * k_w * in_c rounded up to a multiple of 4 (the kernel's steps of 4 taps)."""
    p = op.params
    return -(-p["k_h"] * p["k_w"] * p["in_c"] // 4) * 4


def fuse(op: LoweredOp, then: LoweredOp) -> bool:
    """A max pool taken into the convolution before it (te_conv2d's pooled pass): non-overlapping whole windows
    (stride = window, no padding, every window inside the convolution's output), and te_output's short path exact
    for the convolution. That path is non-decreasing in the accumulator (a positive multiplier, a right shift and a
    clamp), so the max of the requantized outputs is the requantized max accumulator: one requantization a pooled
    output, and the convolution's full-size output never exists."""
    if op.kernel != "conv2d" or then.kernel != "max_pool":
        return False
    c, p = op.params, then.params
    return (p["stride_h"], p["stride_w"], p["pad_h"], p["pad_w"]) == (p["k_h"], p["k_w"], 0, 0) and \
        p["out_h"] * p["k_h"] <= c["out_h"] and p["out_w"] * p["k_w"] <= c["out_w"] and \
        bool((c["multipliers"].values >= 0).all()) and _fast(c) == 1


def c_params(op: LoweredOp) -> dict:
    """The op's parameters in the C kernels' layout (a max pool taken in: its window, output size and range)."""
    params = dict(op.params)
    pool = params.pop("then", None)
    if pool is not None:
        params |= {"pool_h": pool["k_h"], "pool_w": pool["k_w"], "pool_out_h": pool["out_h"],
                   "pool_out_w": pool["out_w"], "pool_min": pool["act_min"], "pool_max": pool["act_max"]}
    if op.kernel in INLINE:
        params["fast"] = _fast(params)
        if params["fast"]:   # te_output's short path takes e - 1 = -shift - 1
            shifts = params["shifts"]
            params["shifts"] = ConstArray(shifts.name, (-shifts.values - 1).astype(np.int32))
    if _row3(op):
        name, record = params["bias"].name.replace("_bias", "_channels"), _channels(params)
        for key in ("weights", "bias", "multipliers", "shifts"):
            del params[key]
        params["channels"] = ConstArray(name, record)
    elif op.kernel == "conv2d":
        # its output over its own input (overlap()) and wider: te_conv2d runs the pixels last to first
        params["reverse"] = int(op.output == op.inputs[0] and params["out_c"] > params["in_c"])
        depth = _depth(op)
        weights = params["weights"]
        rows = weights.values.reshape(params["out_c"], -1)
        padded = np.zeros((len(rows), depth), np.int8)
        padded[:, :rows.shape[1]] = rows
        params |= {"depth": depth, "weights": ConstArray(weights.name, padded)}
    return params


def _gathered(op: LoweredOp) -> int:
    """Pixels a convolution gathers per pass: two, or its pool window's."""
    pool = op.params.get("then")
    return max(2, pool["k_h"] * pool["k_w"]) if pool else 2


def scratch_bytes(op: LoweredOp) -> int:
    """A convolution's im2col scratch: depth int16 (a widened column) per pixel gathered in a pass (none for
    te_conv_row3, which keeps its words in registers)."""
    return 2 * _gathered(op) * _depth(op) if op.kernel == "conv2d" and not _row3(op) else 0


def _direct(op: LoweredOp) -> bool:
    """A 1x1 stride-1 unpadded convolution whose input pixels are its columns (te_conv_pixels' direct case)."""
    p = op.params
    return (p["k_h"], p["k_w"], p["stride_h"], p["stride_w"], p["pad_h"], p["pad_w"]) == (1, 1, 1, 1, 0, 0) and \
        p["in_c"] == _depth(op)


def _window_start(p: dict, pixel: int) -> int:
    """The first input byte output pixel `pixel` (row-major) reads: its window's top left corner inside the image."""
    oy, ox = divmod(pixel, p["out_w"])
    row, col = max(0, oy * p["stride_h"] - p["pad_h"]), max(0, ox * p["stride_w"] - p["pad_w"])
    return (row * p["in_w"] + col) * p["in_c"]


def _distance(p: dict, passes: list[list[int]]) -> int:
    """Bytes an output must start before its input so that no pass (output pixels computed together, each pass
    reading all it reads before writing) overwrites a byte it or a later pass still reads: the most a pass's last
    output byte runs past the first input byte of the passes from it on, rounded up to the alignment."""
    distance, first = 0, _window_start(p, passes[-1][0])
    for pixels in reversed(passes):
        first = min(first, *(_window_start(p, px) for px in pixels))
        distance = max(distance, (pixels[-1] + 1) * p["out_c"] - first)
    return -(-distance // ALIGNMENT) * ALIGNMENT


def overlap(op: LoweredOp) -> int | None:
    """Where this backend's kernel may write an op's output over its dying input: the output's offset minus the
    input's. A direct 1x1 convolution widens a pair of pixels into its scratch before writing their outputs, so
    the same offset is safe (pixels first to last when the output is no wider, else last to first). Any other
    convolution gathers its two pixels' windows first (pairs of the row-major pixels), te_conv_row3 and a depthwise
    layer read all a pass's two pixels of a row read before writing them: their outputs start _distance before."""
    p = op.params
    if "then" in p:   # a pooled pass reads a window's pixels, writes one: not offered
        return None
    if op.kernel == "conv2d" and _direct(op):
        return 0
    pixels = p["out_h"] * p["out_w"] if op.kernel in ("conv2d", "depthwise_conv2d") else 0
    if op.kernel == "conv2d" and not _row3(op):
        return -_distance(p, [list(range(px, min(px + 2, pixels))) for px in range(0, pixels, 2)])
    if op.kernel in ("conv2d", "depthwise_conv2d"):   # pairs within each row
        return -_distance(p, [[row + ox for ox in range(x, min(x + 2, p["out_w"]))]
                              for row in range(0, pixels, p["out_w"]) for x in range(0, p["out_w"], 2)])
    return None


def lower_model(tflite: bytes) -> LoweredModel:
    """The lowering with this backend's scratch buffers planned in the arena like the activations, outputs over
    their dying inputs where the kernels allow (overlap), and max pools inside their convolutions (fuse)."""
    return lower(tflite, scratch=scratch_bytes, overlap=overlap, fuse=fuse)


def generate(model: LoweredModel) -> dict[str, str]:
    """Relative path -> text of every file of the C model (model.h, model.c, te_*.c, te_*.h)."""
    files = {"model.h": _header(model), "model.c": _source(model)}
    for name in COMMON + _kernel_files(model):
        files[name] = (KERNELS / name).read_text()
    return files


def _kernel_files(model: LoweredModel) -> tuple[str, ...]:
    return tuple(sorted({KERNEL_FILE[op.kernel] for op in model.ops if op.kernel in KERNEL_FILE}))


def constant_bytes(model: LoweredModel) -> int:
    """Bytes of every constant array (weights, biases, requantization multipliers and shifts)."""
    return sum(v.values.nbytes for op in model.ops for v in c_params(op).values() if isinstance(v, ConstArray))


def _header(model: LoweredModel) -> str:
    i, o = model.input, model.output
    return f"""/* Generated by tinyedge (C backend): an int8 model without an interpreter. Do not edit. */
#ifndef TINYEDGE_MODEL_H
#define TINYEDGE_MODEL_H

#include <stdint.h>

/* Input: int8 {'x'.join(map(str, i.shape))} (NHWC), real = {i.scale!r} * (q - ({i.zero_point})). */
#define TINYEDGE_INPUT_SIZE {i.size}
#define TINYEDGE_INPUT_SCALE {i.scale!r}f
#define TINYEDGE_INPUT_ZERO_POINT ({i.zero_point})
/* Output: int8 {'x'.join(map(str, o.shape))}, real = {o.scale!r} * (q - ({o.zero_point})). */
#define TINYEDGE_OUTPUT_SIZE {o.size}
#define TINYEDGE_OUTPUT_SCALE {o.scale!r}f
#define TINYEDGE_OUTPUT_ZERO_POINT ({o.zero_point})
/* Bytes of the one static arena: activations and convolution scratch ({model.plan.method}). */
#define TINYEDGE_ARENA_SIZE {model.arena_size}
/* Multiply-accumulates per inference. */
#define TINYEDGE_MACS {model.macs}L
/* Operators, in order: with TINYEDGE_LAYER_HOOK defined, tinyedge_invoke calls tinyedge_layer_done(i) (the
   caller's) after operator i, so that a harness can time each one. */
#define TINYEDGE_LAYERS {len(model.ops)}
#ifdef TINYEDGE_LAYER_HOOK
void tinyedge_layer_done(int layer);
#define TE_LAYER_DONE(layer) tinyedge_layer_done(layer)
#else
#define TE_LAYER_DONE(layer) ((void)0)
#endif

/* One inference: reads TINYEDGE_INPUT_SIZE bytes from in, writes TINYEDGE_OUTPUT_SIZE bytes to out; returns 0.
   Not reentrant (one static arena). */
int tinyedge_invoke(const int8_t *in, int8_t *out);

#endif
"""


def _array(array: ConstArray) -> str:
    values = np.ravel(array.values)
    rows = [", ".join(str(int(v)) for v in values[i:i + 24]) for i in range(0, len(values), 24)]
    body = ",\n    ".join(rows)
    return f"static const {C_TYPE[values.dtype]} {array.name}[{len(values)}] = {{\n    {body}\n}};\n"


def _call(index: int, op: LoweredOp, params: dict) -> tuple[str, str]:
    """(the op's static parameter block, its call in tinyedge_invoke)."""
    if op.kernel == "reshape":   # its output shares its input's bytes (lowering/plan.py): nothing to run
        return "", f"    /* {index}: {op.op} {op.layer}: in place, no code */\n    TE_LAYER_DONE({index});\n"
    fields = ", ".join(f".{key} = {value.name if isinstance(value, ConstArray) else value}"
                       for key, value in params.items())
    name = f"op{index}"
    block = f"/* {index}: {op.op} {op.layer} */\nstatic const {PARAMS_TYPE[op.kernel]} {name} = {{{fields}}};\n"
    args = [f"arena + {offset}" for offset in op.inputs] + [f"arena + {op.output}"]
    if op.kernel == "conv2d":
        args.append("0" if op.scratch is None else f"(int16_t *)(void *)(arena + {op.scratch})")
    return block, f"    te_{op.kernel}(&{name}, {', '.join(args)});\n    TE_LAYER_DONE({index});\n"


def _source(model: LoweredModel) -> str:
    params = [c_params(op) for op in model.ops]
    arrays = "".join(_array(v) for p in params for v in p.values() if isinstance(v, ConstArray))
    blocks, calls = zip(*(_call(i, op, p) for i, (op, p) in enumerate(zip(model.ops, params, strict=True))),
                        strict=True)
    includes = "".join(f'#include "{name}"\n' for name in _kernel_files(model) if name.endswith(".h"))
    return f"""/* Generated by tinyedge (C backend). Do not edit. */
#include <string.h>

#include "model.h"
#include "te_kernels.h"
{includes}
{arrays}
{"".join(blocks)}
/* Every activation and scratch buffer lives here at an offset fixed by the memory plan (a union: 4-byte aligned,
   in C99). */
static union {{
    int32_t align;
    int8_t bytes[TINYEDGE_ARENA_SIZE];
}} arena_store;
#define arena (arena_store.bytes)

int tinyedge_invoke(const int8_t *in, int8_t *out) {{
    memcpy(arena + {model.input.offset}, in, TINYEDGE_INPUT_SIZE);
{"".join(calls)}    memcpy(out, arena + {model.output.offset}, TINYEDGE_OUTPUT_SIZE);
    return 0;
}}
"""
