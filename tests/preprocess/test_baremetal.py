"""The generated preprocessing on a real 32-bit bare-metal target, against the Python preprocessing.

tests/backends/tflm/test_firmware.py compiles src/preprocess.c with the host gcc (64-bit `long`, glibc). Here the same generated
file is cross-compiled by the product's qemu toolchain (tinyedge_tasks/toolchains/qemu: Debian's arm-none-eabi-gcc,
its start-up code, linker script and sample runner) for a Cortex-M4 (32-bit `int` and `long`, newlib, soft float)
and run under qemu-system-arm on the mps2-an386 board. The runner calls `tinyedge_invoke(in, out)` on every sample:
here a stand-in "model" whose input is an RGB565 frame and whose output is te_preprocess_rgb565's model input.
Every output byte must equal the Python preprocessing's. CI installs the tools (.ci/run); without them it fails.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frames import FIRMWARE, calibration_of, camera_frames, from_rgb565, rgb565
from tinyedge_tasks import preprocess
from tinyedge_tasks.preprocess import c as preprocess_c
from tinyedge_tasks.toolchains import qemu

FRAME_MODEL = """#include <stdint.h>
#include <string.h>
#include "preprocess.h"
#define TINYEDGE_INPUT_SIZE ({width} * {height} * 2)
#define TINYEDGE_OUTPUT_SIZE (TE_INPUT_SIZE * (int)sizeof(te_input_t))
int tinyedge_invoke(const int8_t *in, int8_t *out);
"""
FRAME_INVOKE = """#include "model.h"
static te_input_t input[TE_INPUT_SIZE];   /* aligned for te_input_t, copied out byte for byte */
int tinyedge_invoke(const int8_t *in, int8_t *out) {
    te_preprocess_rgb565((const uint8_t *)in, FRAME_WIDTH, FRAME_HEIGHT, input);
    memcpy(out, input, sizeof input);
    return 0;
}
"""


def _check_frames_on_cortex_m(preprocess_files: dict[str, str], work: Path, width: int, height: int,
                              channels: int, quant: dict) -> int:
    """Every camera frame through the cross-compiled preprocess.c in QEMU, one firmware per frame size; returns
    the bytes compared."""
    table = preprocess.input_table(quant["scale"], quant["zero_point"], quant["dtype"], preprocess.UNIT)
    little_endian = np.dtype(quant["dtype"]).newbyteorder("<")  # the Cortex-M's byte order, whatever the host's
    frames = camera_frames()
    compared = 0
    for w, h in sorted({(rgb.shape[1], rgb.shape[0]) for rgb in frames}):
        src = work / f"{w}x{h}"
        src.mkdir(parents=True)
        for name, text in preprocess_files.items():
            (src / name).write_text(text)
        (src / "model.h").write_text(FRAME_MODEL.format(width=w, height=h))
        (src / "model.c").write_text(f"#define FRAME_WIDTH {w}\n#define FRAME_HEIGHT {h}\n{FRAME_INVOKE}")
        elf = qemu.compile_firmware(src, src / "out")
        header = elf.read_bytes()[:20]
        assert header[:5] == b"\x7fELF\x01" and int.from_bytes(header[18:20], "little") == 40  # 32-bit, EM_ARM
        sized = [rgb565(rgb) for rgb in frames if rgb.shape[:2] == (h, w)]
        result = qemu.run(elf, np.frombuffer(b"".join(sized), np.int8).reshape(len(sized), -1), timeout=60)
        for frame, got in zip(sized, result.outputs, strict=True):
            pixels = preprocess.resize(from_rgb565(frame, w, h), width, height, channels)
            expected = table[pixels].astype(little_endian).tobytes()
            assert len(expected) == width * height * channels * little_endian.itemsize
            assert got.tobytes() == expected, f"a {w}x{h} frame on the Cortex-M differs from the Python preprocessing"
            compared += len(expected)
    return compared


@pytest.mark.qemu
def test_example_preprocessing_on_cortex_m_matches_python(built_project, tmp_path):
    """The example's generated src/preprocess.c (32x32 grayscale, int8) on six camera frames, 320x240 and
    smaller, on the Cortex-M4."""
    src = built_project / FIRMWARE / "src"
    files = {name: (src / name).read_text() for name in ("preprocess.h", "preprocess.c")}
    compared = _check_frames_on_cortex_m(files, tmp_path, 32, 32, 1, calibration_of(built_project)["input"])
    assert compared == 6 * 32 * 32


@pytest.mark.parametrize("width,height,channels,quant", [
    (64, 16, 3, {"dtype": "int16", "scale": 0.00003, "zero_point": 0}),         # int16x8, crop the height
    (48, 40, 3, {"dtype": "int8", "scale": 0.0078125, "zero_point": -1}),       # colour, crop the width
])
@pytest.mark.qemu
def test_other_inputs_on_cortex_m_match_python(tmp_path, width, height, channels, quant):
    sources = preprocess_c.sources(width, height, channels, quant, preprocess.UNIT)
    files = {Path(name).name: text for name, text in sources.items()}
    compared = _check_frames_on_cortex_m(files, tmp_path, width, height, channels, quant)
    assert compared == 6 * width * height * channels * np.dtype(quant["dtype"]).itemsize
