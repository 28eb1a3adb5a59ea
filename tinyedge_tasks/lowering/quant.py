"""TFLite's integer requantization, computed the way TFLM's Prepare functions compute it (bit for bit).

Scales are float32 in the flatbuffer; TFLM widens them to double at the same places as here, and the one place
it multiplies two float32 first (per-tensor FULLY_CONNECTED, GetQuantizedConvolutionMultipler) is kept.
The PyPI tflite-micro build uses the double-rounding MultiplyByQuantizedMultiplier (TFLITE_SINGLE_ROUNDING
unset); tests/backends/c/test_c_backend.py checks that against the runtime through whole models.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import TinyedgeError

INT8_MIN, INT8_MAX = -128, 127
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5   # kScaledDiffIntegerBits in TFLM's softmax
ADD_LEFT_SHIFT = 20                    # int8 ADD: inputs are shifted left by 20 bits before rescaling


def _round_half_away(value: float) -> int:
    """TfLiteRound / std::round: halves away from zero (Python's round() rounds halves to even)."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) as int32."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q = _round_half_away(fraction * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q), int(shift)


def f32(value: float) -> float:
    """A value as the float32 the C++ code holds (scales, beta)."""
    return float(np.float32(value))


def conv_multipliers(input_scale: float, filter_scales: list[float], output_scale: float,
                     channels: int) -> tuple[list[int], list[int]]:
    """PopulateConvolutionQuantizationParams (CONV_2D, DEPTHWISE_CONV_2D, per-channel FULLY_CONNECTED):
    effective scale = double(in) * double(w[c]) / double(out), a per-tensor scale broadcast to every channel."""
    multipliers, shifts = [], []
    for c in range(channels):
        w = filter_scales[c] if len(filter_scales) > 1 else filter_scales[0]
        m, s = quantize_multiplier(f32(input_scale) * f32(w) / f32(output_scale))
        multipliers.append(m)
        shifts.append(s)
    return multipliers, shifts


def fc_per_tensor_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """GetQuantizedConvolutionMultipler: the float32 product in*w, then widened and divided in double."""
    product = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / f32(output_scale))


def _quantize_float(value: float, scale: float, zero_point: int) -> int:
    """kernel_util's Quantize: TfLiteRound(f / scale) in float32, plus the zero point."""
    return zero_point + _round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int, layer: str) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output and a fused activation."""
    if activation == "NONE":
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, _quantize_float(0.0, scale, zero_point)), INT8_MAX
    if activation == "RELU6":
        return (max(INT8_MIN, _quantize_float(0.0, scale, zero_point)),
                min(INT8_MAX, _quantize_float(6.0, scale, zero_point)))
    if activation == "RELU_N1_TO_1":
        return (max(INT8_MIN, _quantize_float(-1.0, scale, zero_point)),
                min(INT8_MAX, _quantize_float(1.0, scale, zero_point)))
    raise TinyedgeError(f"layer {layer}: fused activation {activation} is not supported by the C backend; "
                        "supported: NONE, RELU, RELU6, RELU_N1_TO_1 (use one of them in the Keras model)")


def softmax_params(input_scale: float, beta: float) -> tuple[int, int, int]:
    """SOFTMAX int8 -> int8 (TFLM uses the gemmlowp exp_on_negative_values kernel, not a LUT, for int8):
    PreprocessSoftmaxScaling (double rounding: cap 2^31 - 1) and diff_min from CalculateInputRadius."""
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(f32(beta) * f32(input_scale) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    return multiplier, left_shift, -radius


def mean_params(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """MEAN int8 (QuantizedMeanOrSum): in/out scale as multiplier and shift, then the division by the element
    count folded into the multiplier exactly as reference_ops does it."""
    multiplier, shift = quantize_multiplier(f32(input_scale) / f32(output_scale))
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    if extra < 0:
        raise TinyedgeError(f"MEAN: input/output scale ratio {input_scale / output_scale:g} is below 2^-31; "
                            "TFLM cannot run it either: check the model's quantization")
    multiplier = int(np.array((multiplier << extra) // count, dtype=np.int64).astype(np.int32))
    return multiplier, shift - extra


def add_params(scale1: float, scale2: float, output_scale: float) -> dict[str, int]:
    """ADD int8 (add_common.cc): both inputs rescaled to twice the larger input scale, left shift 20."""
    twice_max = 2 * f32(max(np.float32(scale1), np.float32(scale2)))
    m1, s1 = quantize_multiplier(f32(scale1) / twice_max)
    m2, s2 = quantize_multiplier(f32(scale2) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * f32(output_scale)))
    return {"input1_multiplier": m1, "input1_shift": s1, "input2_multiplier": m2, "input2_shift": s2,
            "output_multiplier": mo, "output_shift": so, "left_shift": ADD_LEFT_SHIFT}


# NumPy references of the fixed-point primitives (gemmlowp / TFLM double rounding), vectorised over int64.

def saturating_rounding_doubling_high_mul(a: np.ndarray, b: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    product = a * np.int64(b)
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    result = np.where(total >= 0, total >> 31, -((-total) >> 31))   # C++ division truncates toward zero
    overflow = (a == -(1 << 31)) & (b == -(1 << 31))
    return np.where(overflow, (1 << 31) - 1, result).astype(np.int64)


def rounding_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(int32 x, ...) as built into PyPI tflite-micro (double rounding)."""
    x = np.asarray(x, dtype=np.int64)
    left, right = max(shift, 0), max(-shift, 0)
    shifted = ((x << left) + (1 << 31)) % (1 << 32) - (1 << 31)   # int32 wrap, as x * (1 << left) in C
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)
