"""Image preprocessing in integer arithmetic, so the firmware's C code can repeat it byte for byte.

Order (the firmware does the same): colour conversion per source pixel, centre crop to the model's aspect
ratio, box (area) resize with rounded integer means. Grayscale uses the ITU-R 601 weights in 16.16 fixed
point, as Pillow does. Input quantization is a 256-entry table computed here and embedded in the firmware.

The declared input transform (`dataset.input.transform`, or `scale`/`offset`) says what float a pixel becomes:
pixel / divisor + offset. Training, the representative data, every runtime's input and every firmware's table
read it from here, so a model trained on [-1, 1] pixels gets [-1, 1] pixels on the board too. A data set of float
features (an .npz of spectrograms, sensor windows) has no pixels: its values go to the model as they are (`raw`,
or scale/offset), quantized with the model's input scale.
"""
from __future__ import annotations

import numpy as np

GRAY_WEIGHTS = (19595, 38470, 7471)  # R, G, B in 16.16 fixed point; they sum to 65536
# name -> (divisor, offset): a divisor, not a multiplier, so `unit` computes pixel / 255.0 as tinyedge always did
# (pixel * (1 / 255) differs in the last bit for some pixels, which would change every existing artifact).
PRESETS = {"unit": (255.0, 0.0), "symmetric": (127.5, -1.0), "raw": (1.0, 0.0)}
UNIT = PRESETS["unit"]


def transform_of(input_config: dict) -> tuple[float, float]:
    """(divisor, offset) of the manifest's `dataset.input`: explicit scale/offset, else the named preset."""
    if input_config.get("scale") is not None:
        return 1.0 / input_config["scale"], float(input_config.get("offset") or 0.0)
    return PRESETS[input_config.get("transform") or "unit"]


def formula(transform: tuple[float, float]) -> str:
    """The transform as the generated sources' comments write it: `pixel / 255`, `(pixel / 127.5 - 1)`."""
    divisor, offset = transform
    text = f"pixel / {divisor:g}"
    return f"({text} {'-' if offset < 0 else '+'} {abs(offset):g})" if offset else text


def to_float(pixels: np.ndarray, transform: tuple[float, float]) -> np.ndarray:
    """uint8 pixels (or float features) -> the float32 model input."""
    divisor, offset = transform
    return pixels.astype(np.float32) / divisor + np.float32(offset)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H,W), (H,W,1), (H,W,3) or (H,W,4) -> uint8 (H,W,channels)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.shape[2] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=2)
    rgb = image.astype(np.uint32)
    gray = (rgb[:, :, 0] * GRAY_WEIGHTS[0] + rgb[:, :, 1] * GRAY_WEIGHTS[1]
            + rgb[:, :, 2] * GRAY_WEIGHTS[2] + 32768) >> 16
    return gray.astype(np.uint8)[:, :, None]


def crop_box(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, crop_w, crop_h): the largest centred window with the model's aspect ratio."""
    if src_w * height > src_h * width:
        crop_w, crop_h = max(1, src_h * width // height), src_h
    else:
        crop_w, crop_h = src_w, max(1, src_w * height // width)  # a tiny image for a very wide input: one row
    return (src_w - crop_w) // 2, (src_h - crop_h) // 2, crop_w, crop_h


def _box_edges(crop: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(out)
    start = index * crop // out
    end = np.maximum((index + 1) * crop // out, start + 1)
    return start, end


def resize(image: np.ndarray, width: int, height: int, channels: int) -> np.ndarray:
    """uint8 image of any size -> uint8 (height, width, channels), exactly as the firmware computes it."""
    image = to_channels(image, channels)
    x0, y0, crop_w, crop_h = crop_box(image.shape[1], image.shape[0], width, height)
    window = image[y0:y0 + crop_h, x0:x0 + crop_w].astype(np.int64)
    integral = np.zeros((crop_h + 1, crop_w + 1, channels), np.int64)
    integral[1:, 1:] = window.cumsum(0).cumsum(1)
    ys, ye = _box_edges(crop_h, height)
    xs, xe = _box_edges(crop_w, width)
    total = (integral[ye][:, xe] - integral[ys][:, xe] - integral[ye][:, xs] + integral[ys][:, xs])
    count = ((ye - ys)[:, None] * (xe - xs)[None, :])[:, :, None]
    return ((total + count // 2) // count).astype(np.uint8)


def input_table(scale: float, zero_point: int, dtype: str, transform: tuple[float, float]) -> np.ndarray:
    """pixel (0..255) -> quantized model input, for a model trained on pixel / divisor + offset."""
    return _quantized(np.arange(256) / transform[0] + transform[1], scale, zero_point, dtype)


def _quantized(values: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def quantize(x: np.ndarray, quant: dict, transform: tuple[float, float]) -> np.ndarray:
    """Model inputs -> the quantized input tensor {scale, zero_point, dtype (int8 if absent)}: what calibrate
    measures, `doit flash` runs on the emulated board and `doit validate` sends. uint8 pixels through the table the
    firmware embeds; float features (any shape) by the same arithmetic, value by value, in float64 as the table."""
    dtype = quant.get("dtype", "int8")
    if x.dtype == np.uint8:
        return input_table(quant["scale"], quant["zero_point"], dtype, transform)[x]
    return _quantized(x.astype(np.float64) / transform[0] + transform[1], quant["scale"], quant["zero_point"], dtype)
