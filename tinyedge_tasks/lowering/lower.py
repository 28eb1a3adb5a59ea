"""The lowered model: operators in order, every integer parameter precomputed, arena offsets assigned.

A renderer (C today, MicroPython later) only prints it: no arithmetic decisions are left to a template."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import TinyedgeError
from . import quant
from .graph import Graph, Operator, Tensor, read_graph
from .macs import UNWEIGHTED, weighted
from .plan import Plan, plan_memory

SUPPORTED = ("ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "MEAN",
             "PAD", "PADV2", "RESHAPE", "SOFTMAX")


@dataclass
class ConstArray:
    name: str            # identifier, unique in the model
    values: np.ndarray   # int8 or int32


@dataclass
class LoweredOp:
    kernel: str                       # conv2d, depthwise_conv2d, fully_connected, max_pool, ...
    op: str                           # the TFLite builtin it implements
    layer: str
    inputs: list[int]                 # arena offsets of the activations read
    output: int                       # arena offset of the activation written
    params: dict[str, int | ConstArray] = field(default_factory=dict)
    macs: int = 0                     # multiply-accumulates per inference
    scratch: int | None = None        # arena offset of the op's scratch buffer, when the renderer asked for one


@dataclass
class TensorInfo:
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    offset: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class LoweredModel:
    ops: list[LoweredOp]
    input: TensorInfo
    output: TensorInfo
    arena_size: int
    plan: Plan
    macs: int
    scratch: dict[int, int] = field(default_factory=dict)   # plan buffer id of a scratch -> its op's index


def _fail(op: Operator, what: str, fix: str) -> TinyedgeError:
    return TinyedgeError(f"layer {op.layer} ({op.name}): {what}; {fix}")


def _padding(stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> int:
    """ComputePadding (tensorflow/lite/kernels/padding.h): half the total padding, the smaller half first."""
    effective = (filter_size - 1) * dilation + 1
    return max(((out_size - 1) * stride + effective - in_size) // 2, 0)


class _Lowering:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.t = graph.tensors

    def int8(self, op: Operator, index: int) -> Tensor:
        tensor = self.t[index]
        if tensor.dtype != "INT8":
            raise _fail(op, f"tensor {tensor.name} is {tensor.dtype}, the C backend runs int8 activations only "
                        "(no int16x8, float or uint8)", "quantize with scheme int8 or int8_per_tensor")
        return tensor

    def nhwc(self, op: Operator, tensor: Tensor) -> tuple[int, int, int]:
        if len(tensor.shape) != 4 or tensor.shape[0] != 1:
            raise _fail(op, f"expected a 1xHxWxC tensor, found shape {list(tensor.shape)}", "use batch size 1")
        return tensor.shape[1], tensor.shape[2], tensor.shape[3]

    def const(self, op: Operator, index: int, dtype: str, name: str) -> ConstArray | None:
        if index < 0:
            return None
        tensor = self.t[index]
        if tensor.data is None or tensor.dtype != dtype:
            raise _fail(op, f"{name} tensor {tensor.name} must be a constant {dtype}, found "
                        f"{tensor.dtype}{'' if tensor.data is not None else ' (not constant)'}",
                        "convert the model with constant int8 weights and int32 biases")
        return ConstArray(f"op{op.index}_{name}", tensor.data)

    def weights(self, op: Operator, index: int) -> tuple[ConstArray, Tensor]:
        tensor = self.t[index]
        array = self.const(op, index, "INT8", "weights")
        if any(z != 0 for z in tensor.zero_points):
            raise _fail(op, "weights have a nonzero zero point", "quantize weights symmetrically (TFLite default)")
        return array, tensor

    def activation(self, op: Operator, out: Tensor) -> dict[str, int]:
        low, high = quant.activation_range(op.options.get("fused_activation_function", "NONE"), out.scale,
                                           out.zero_point, op.layer)
        return {"act_min": low, "act_max": high}

    def lower(self, op: Operator) -> tuple[LoweredOp, int]:
        """One operator -> (lowered op with offsets still as tensor indices, multiply-accumulates)."""
        if op.name not in SUPPORTED:
            raise TinyedgeError(f"layer {op.layer}: operator {op.name} is not supported by the C backend; "
                                f"supported: {', '.join(SUPPORTED)}. Replace the layer or use the tflm backend")
        return getattr(self, op.name.lower())(op)

    def conv_common(self, op: Operator, depthwise: bool) -> tuple[LoweredOp, int]:
        inp, out = self.int8(op, op.inputs[0]), self.int8(op, op.outputs[0])
        (ih, iw, ic), (oh, ow, oc) = self.nhwc(op, inp), self.nhwc(op, out)
        weights, w = self.weights(op, op.inputs[1])
        bias = self.const(op, op.inputs[2] if len(op.inputs) > 2 else -1, "INT32", "bias")
        kh, kw = w.shape[1], w.shape[2]
        o = op.options
        sh, sw, dh, dw = o["stride_h"], o["stride_w"], o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
        mults, shifts = quant.conv_multipliers(inp.scale, w.scales, out.scale, oc)
        per_channel = len(w.scales) > 1
        params = {"in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "k_h": kh, "k_w": kw,
                  "stride_h": sh, "stride_w": sw, "dil_h": dh, "dil_w": dw,
                  "pad_h": _padding(sh, dh, ih, kh, oh), "pad_w": _padding(sw, dw, iw, kw, ow)}
        if depthwise:
            params["depth_multiplier"] = oc // ic
            macs = weighted(oh * ow * oc, kh * kw)
        else:
            if w.shape[3] != ic:
                raise _fail(op, f"grouped convolution (filter depth {w.shape[3]}, input depth {ic})",
                            "use a plain or depthwise convolution")
            macs = weighted(oh * ow * oc, kh * kw * ic)
        values = weights.values.astype(np.int64)
        taps = values.reshape(-1, oc).sum(axis=0) if depthwise else values.reshape(oc, -1).sum(axis=1)
        params |= {"input_offset": -inp.zero_point, "output_offset": out.zero_point, **self.activation(op, out),
                   "per_channel": int(per_channel), "weights": weights,
                   "bias": self.folded_bias(op, bias, -inp.zero_point, taps)}
        params |= {"multipliers": self.int32s(op, "multipliers", mults if per_channel else mults[:1]),
                   "shifts": self.int32s(op, "shifts", shifts if per_channel else shifts[:1])}
        kernel = "depthwise_conv2d" if depthwise else "conv2d"
        return LoweredOp(kernel, op.name, op.layer, [op.inputs[0]], op.outputs[0], params), macs

    @staticmethod
    def folded_bias(op: Operator, bias: ConstArray | None, input_offset: int, weight_sums: np.ndarray) -> ConstArray:
        """bias + input_offset * (sum of the channel's weights): the kernels then accumulate plain w * x products
        and subtract input_offset * w only for taps outside the image. The same int32 sums as TFLite's
        sum of w * (x + input_offset), in a different order (exact: no int32 overflow, wrap-around otherwise)."""
        base = np.zeros(len(weight_sums), np.int64) if bias is None else bias.values.astype(np.int64)
        folded = base + input_offset * weight_sums.astype(np.int64)
        if np.abs(folded).max(initial=0) >= 1 << 31:
            raise _fail(op, "bias plus input offset times the weight sum exceeds int32", "retrain or requantize")
        return ConstArray(f"op{op.index}_bias", folded.astype(np.int32))

    @staticmethod
    def int32s(op: Operator, name: str, values: list[int]) -> ConstArray:
        return ConstArray(f"op{op.index}_{name}", np.asarray(values, dtype=np.int32))

    def conv_2d(self, op):
        return self.conv_common(op, depthwise=False)

    def depthwise_conv_2d(self, op):
        return self.conv_common(op, depthwise=True)

    def fully_connected(self, op):
        inp, out = self.int8(op, op.inputs[0]), self.int8(op, op.outputs[0])
        weights, w = self.weights(op, op.inputs[1])
        bias = self.const(op, op.inputs[2] if len(op.inputs) > 2 else -1, "INT32", "bias")
        units, depth = w.shape
        batches = int(np.prod(inp.shape)) // depth
        if len(w.scales) > 1:
            mults, shifts = quant.conv_multipliers(inp.scale, w.scales, out.scale, units)
        else:
            m, s = quant.fc_per_tensor_multiplier(inp.scale, w.scale, out.scale)
            mults, shifts = [m], [s]
        params = {"batches": batches, "in_depth": depth, "out_depth": units, "output_offset": out.zero_point,
                  **self.activation(op, out), "per_channel": int(len(mults) > 1), "weights": weights,
                  "bias": self.folded_bias(op, bias, -inp.zero_point, weights.values.astype(np.int64).sum(axis=1))}
        params |= {"multipliers": self.int32s(op, "multipliers", mults), "shifts": self.int32s(op, "shifts", shifts)}
        return LoweredOp("fully_connected", op.name, op.layer, [op.inputs[0]], op.outputs[0], params), \
            weighted(batches * units, depth)

    def pool(self, op, kernel):
        inp, out = self.int8(op, op.inputs[0]), self.int8(op, op.outputs[0])
        (ih, iw, c), (oh, ow, _) = self.nhwc(op, inp), self.nhwc(op, out)
        o = op.options
        kh, kw, sh, sw = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
        params = {"in_h": ih, "in_w": iw, "channels": c, "out_h": oh, "out_w": ow, "k_h": kh, "k_w": kw,
                  "stride_h": sh, "stride_w": sw, "pad_h": _padding(sh, 1, ih, kh, oh),
                  "pad_w": _padding(sw, 1, iw, kw, ow), **self.activation(op, out)}
        return LoweredOp(kernel, op.name, op.layer, [op.inputs[0]], op.outputs[0], params), UNWEIGHTED

    def max_pool_2d(self, op):
        return self.pool(op, "max_pool")

    def average_pool_2d(self, op):
        inp, out = self.t[op.inputs[0]], self.t[op.outputs[0]]
        if (inp.scale, inp.zero_point) != (out.scale, out.zero_point):
            raise _fail(op, "input and output quantization differ", "TFLM requires equal ones for int8 pooling")
        return self.pool(op, "average_pool")

    def dims4(self, op: Operator, tensor: Tensor) -> list[int]:
        if len(tensor.shape) > 4:
            raise _fail(op, f"tensor {tensor.name} has {len(tensor.shape)} dimensions", "use at most 4")
        return [1] * (4 - len(tensor.shape)) + list(tensor.shape)

    def mean(self, op):
        inp, out = self.int8(op, op.inputs[0]), self.int8(op, op.outputs[0])
        axis_tensor = self.t[op.inputs[1]]
        if axis_tensor.data is None:
            raise _fail(op, "the axes are not constant", "reduce over constant axes")
        dims = self.dims4(op, inp)
        rank = len(inp.shape)
        axes = sorted({int(a) % rank + (4 - rank) for a in np.ravel(axis_tensor.data)})
        count = int(np.prod([dims[a] for a in axes]))
        multiplier, shift = quant.mean_params(inp.scale, out.scale, count)
        params = {f"d{i}": dims[i] for i in range(4)} | {f"r{i}": int(i in axes) for i in range(4)}
        params |= {"count": count, "input_zp": inp.zero_point, "output_zp": out.zero_point,
                   "multiplier": multiplier, "shift": shift}
        return LoweredOp("mean", op.name, op.layer, [op.inputs[0]], op.outputs[0], params), UNWEIGHTED

    def add(self, op):
        a, b, out = (self.int8(op, i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if a.shape != b.shape:
            raise _fail(op, f"broadcasting ADD ({list(a.shape)} + {list(b.shape)})", "add tensors of equal shape")
        if a.data is not None or b.data is not None:
            raise _fail(op, "ADD of a constant tensor", "add two computed tensors")
        params = {"size": int(np.prod(out.shape)), "input1_offset": -a.zero_point, "input2_offset": -b.zero_point,
                  "output_offset": out.zero_point, **quant.add_params(a.scale, b.scale, out.scale),
                  **self.activation(op, out)}
        return LoweredOp("add", op.name, op.layer, [op.inputs[0], op.inputs[1]], op.outputs[0], params), 0

    def reshape(self, op):
        inp, out = self.int8(op, op.inputs[0]), self.int8(op, op.outputs[0])
        if (inp.scale, inp.zero_point) != (out.scale, out.zero_point):
            raise _fail(op, "RESHAPE changes the quantization", "TFLM requires equal input and output ones")
        return LoweredOp("reshape", op.name, op.layer, [op.inputs[0]], op.outputs[0],
                         {"size": int(np.prod(out.shape))}), 0

    def softmax(self, op):
        inp, out = self.int8(op, op.inputs[0]), self.int8(op, op.outputs[0])
        if out.zero_point != -128 or out.scale != 1 / 256:
            raise _fail(op, f"output scale {out.scale} and zero point {out.zero_point}",
                        "TFLM requires 1/256 and -128 for an int8 softmax: convert with the TFLite converter")
        multiplier, left_shift, diff_min = quant.softmax_params(inp.scale, op.options.get("beta", 1.0))
        depth = inp.shape[-1]
        params = {"outer": int(np.prod(inp.shape)) // depth, "depth": depth, "multiplier": multiplier,
                  "left_shift": left_shift, "diff_min": diff_min}
        return LoweredOp("softmax", op.name, op.layer, [op.inputs[0]], op.outputs[0], params), 0

    def pad(self, op):
        inp, out = self.int8(op, op.inputs[0]), self.int8(op, op.outputs[0])
        paddings = self.t[op.inputs[1]].data
        if paddings is None:
            raise _fail(op, "the paddings are not constant", "pad by constant amounts")
        value = out.zero_point
        if op.name == "PADV2" and len(op.inputs) > 2:
            value = int(self.const(op, op.inputs[2], "INT8", "pad_value").values.ravel()[0])
        rows = [[0, 0]] * (4 - len(inp.shape)) + paddings.reshape(-1, 2).tolist()
        dims = self.dims4(op, inp)
        params = {f"d{i}": dims[i] for i in range(4)} | {f"before{i}": int(rows[i][0]) for i in range(4)}
        params |= {f"after{i}": int(rows[i][1]) for i in range(4)} | {"value": value}
        return LoweredOp("pad", op.name, op.layer, [op.inputs[0]], op.outputs[0], params), 0

    padv2 = pad


IN_PLACE = ("max_pool", "average_pool", "add", "softmax")   # kernels that read element i before writing it


def _aliases(ops: list[LoweredOp], outputs: list[int]) -> tuple[dict[int, int], list[int]]:
    """(output tensor -> input tensor whose bytes it reuses, the steps whose input dies there): always for RESHAPE
    (no copy at all); for an in-place kernel when its input dies there (pooling only without padding: no later
    window reads a written byte)."""
    aliases: dict[int, int] = {}

    def root(tensor: int) -> int:
        while tensor in aliases:
            tensor = aliases[tensor]
        return tensor

    for op in ops:
        if op.kernel == "reshape":
            aliases[op.output] = op.inputs[0]
    last_read = {root(t): step for step, op in enumerate(ops) for t in op.inputs}  # later steps win
    dying = [step for step, op in enumerate(ops) if op.kernel != "reshape" and
             last_read[root(op.inputs[0])] == step and root(op.inputs[0]) not in outputs]
    for step in dying:
        op = ops[step]
        if op.kernel in IN_PLACE and op.params.get("pad_h", 0) == 0 and op.params.get("pad_w", 0) == 0:
            aliases[op.output] = op.inputs[0]
    return aliases, dying


def _plan(arena: dict[int, int], steps: list, graph: Graph, ops: list[LoweredOp], aliases: dict[int, int],
          dying: list[int], overlap: Callable[[LoweredOp], int | None] | None) -> Plan:
    """The memory plan, with each overlap the renderer allows (an output over its dying input, at a distance)
    kept where the arena grows no larger: chained overlaps drift, so not every one pays, and a peak held at
    several steps falls only once each is taken, so the ones left are tried again until a round keeps none;
    then each kept one is dropped again if the arena gets smaller without it."""
    plan = plan_memory(arena, steps, graph.inputs, graph.outputs, aliases)
    deltas: dict[int, int] = {}
    offered = {ops[step].output: (ops[step].inputs[0], overlap(ops[step])) for step in dying
               if overlap is not None and ops[step].output not in aliases}
    left = {output: found for output, found in offered.items() if found[1] is not None}
    kept = True
    while kept:
        kept = False
        for output, (source, delta) in list(left.items()):
            trial = plan_memory(arena, steps, graph.inputs, graph.outputs, aliases | {output: source},
                                deltas | {output: delta})
            if trial.arena_size <= plan.arena_size:
                plan, aliases, deltas, kept = trial, aliases | {output: source}, deltas | {output: delta}, True
                del left[output]
    for output in list(deltas):   # one kept early at an equal arena may cost bytes once the others are in
        fewer = {t: d for t, d in deltas.items() if t != output}
        trial = plan_memory(arena, steps, graph.inputs, graph.outputs,
                            {t: into for t, into in aliases.items() if t != output}, fewer)
        if trial.arena_size < plan.arena_size:
            plan, deltas = trial, fewer
            del aliases[output]
    return plan


def _fuse(ops: list[LoweredOp], outputs: list[int], fuse: Callable[[LoweredOp, LoweredOp], bool]) -> list[LoweredOp]:
    """ops with each op that is the only reader of the op before it (whose output is no model output) taken into
    that op where the renderer's kernel computes both in one pass (fuse(op, next)): the next op's parameters
    become params["then"], the pair writes the next op's output, and the tensor between them never exists."""
    readers: dict[int, int] = {}
    for op in ops:
        for tensor in op.inputs:
            readers[tensor] = readers.get(tensor, 0) + 1
    fused: list[LoweredOp] = []
    for op in ops:
        last = fused[-1] if fused else None
        if last is not None and "then" not in last.params and op.inputs == [last.output] and \
                readers[last.output] == 1 and last.output not in outputs and fuse(last, op):
            fused[-1] = LoweredOp(last.kernel, f"{last.op}+{op.op}", f"{last.layer}+{op.layer}", last.inputs,
                                  op.output, last.params | {"then": op.params}, last.macs + op.macs)
        else:
            fused.append(op)
    return fused


def lower(tflite: bytes, scratch: Callable[[LoweredOp], int] | None = None,
          overlap: Callable[[LoweredOp], int | None] | None = None,
          fuse: Callable[[LoweredOp, LoweredOp], bool] | None = None) -> LoweredModel:
    """Read, check, compute every parameter and plan the arena for a model of int8 operators. scratch: bytes of
    working memory the renderer's kernel needs for an op (0: none), planned as a buffer alive during that op.
    overlap: where the renderer's kernel for an op may write its output over its dying input, the output's offset
    minus the input's (a multiple of plan.ALIGNMENT), else None; each op's inputs and outputs are still tensor
    indices when it is asked. fuse: whether the renderer's kernel for an op also computes the next op, its
    output's only reader (_fuse), asked before scratch and overlap, which then see the fused op."""
    graph = read_graph(tflite)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise TinyedgeError(f"model: the C backend takes one input and one output, found {len(graph.inputs)} and "
                            f"{len(graph.outputs)}; export a single-input, single-output model")
    lowering = _Lowering(graph)
    for index in graph.inputs + graph.outputs:
        tensor = graph.tensors[index]
        if tensor.dtype != "INT8":
            raise TinyedgeError(f"model: {'input' if index in graph.inputs else 'output'} {tensor.name} is "
                                f"{tensor.dtype}; the C backend runs int8 models only (no int16x8 or float "
                                "input/output): quantize with scheme int8 or int8_per_tensor")
    ops, macs = [], 0
    for op in graph.operators:
        lowered, count = lowering.lower(op)
        lowered.macs = count
        ops.append(lowered)
        macs += count
    if fuse is not None:
        ops = _fuse(ops, graph.outputs, fuse)
    arena = {i: t.size for i, t in enumerate(graph.tensors) if t.data is None and any(
        i in o.inputs or i == o.output for o in ops)}
    aliases, dying = _aliases(ops, graph.outputs)
    steps = [(op.inputs, [op.output]) for op in ops]
    scratches = {}   # op index -> the scratch's buffer id, numbered after the tensors
    for step, op in enumerate(ops):
        if scratch is not None and scratch(op) > 0:
            scratches[step] = len(graph.tensors) + step
            arena[scratches[step]] = scratch(op)
            steps[step] = (op.inputs, [op.output, scratches[step]])
    plan = _plan(arena, steps, graph, ops, aliases, dying, overlap)
    for step, op in enumerate(ops):
        op.inputs = [plan.offsets[i] for i in op.inputs]
        op.output = plan.offsets[op.output]
        op.scratch = plan.offsets[scratches[step]] if step in scratches else None

    def info(index: int) -> TensorInfo:
        t = graph.tensors[index]
        return TensorInfo(t.shape, t.scale, t.zero_point, plan.offsets[index])

    return LoweredModel(ops, info(graph.inputs[0]), info(graph.outputs[0]), plan.arena_size, plan, macs,
                        {buffer: step for step, buffer in scratches.items()})
