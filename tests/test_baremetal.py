"""The generated preprocessing on a real 32-bit bare-metal target, against the Python preprocessing.

tests/test_firmware.py compiles src/preprocess.c with the host gcc (64-bit `long`, glibc). Here the same generated
file is cross-compiled with Debian's arm-none-eabi-gcc for a Cortex-M3 (32-bit `int` and `long`, newlib, no FPU)
and run under qemu-system-arm on the mps2-an385 board: tests/baremetal/ holds the vector table, the linker script
and the harness, which reads the camera frame and writes the model input through semihosting (host files). Every
output byte must equal the Python preprocessing's. CI installs the tools (.ci/run); without them the test fails.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_firmware import FIRMWARE, _calibration, _camera_frames, _from_rgb565, _rgb565
from tinyedge_tasks import preprocess
from tinyedge_tasks.backends.tflm import codegen
from tinyedge_tasks.preprocess import c as preprocess_c

BAREMETAL = Path(__file__).parent / "baremetal"
PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-mcpu=cortex-m3", "-mthumb", "--specs=rdimon.specs"]
QEMU = ["qemu-system-arm", "-M", "mps2-an385", "-cpu", "cortex-m3", "-nodefaults", "-display", "none"]
QEMU_TIMEOUT = 10  # seconds per run; one frame takes well under a second


def _require_tools() -> None:
    """Fail (not skip): a missing cross toolchain must not pass unnoticed."""
    missing = [tool for tool in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(tool) is None]
    if not missing:
        specs = subprocess.run(["arm-none-eabi-gcc", "-print-file-name=rdimon.specs"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
        if not Path(specs).is_file():
            missing.append("newlib's rdimon.specs")
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install them with `apt-get install -y {PACKAGES}` "
                    "(.ci/run does)", pytrace=False)


def _cross_compile(src: Path, work: Path) -> Path:
    _require_tools()
    elf = work / "harness.elf"
    subprocess.run(["arm-none-eabi-gcc", *CFLAGS, "-T", str(BAREMETAL / "mps2-an385.ld"), "-I", str(src),
                    str(BAREMETAL / "startup.c"), str(BAREMETAL / "harness.c"), str(src / "preprocess.c"),
                    "-o", str(elf)], check=True, timeout=120)
    header = elf.read_bytes()[:20]
    assert header[:5] == b"\x7fELF\x01" and int.from_bytes(header[18:20], "little") == 40  # 32-bit, EM_ARM
    return elf


def _run(work: Path, *args: str) -> subprocess.CompletedProcess:
    """harness.elf in QEMU with `args` as its command line. Files are named relative to `work` (QEMU's current
    folder) so that no path with a space or comma reaches the semihosting command line."""
    semihosting = ",".join(["enable=on", "target=native", "arg=harness", *(f"arg={a}" for a in args)])
    try:
        return subprocess.run([*QEMU, "-kernel", "harness.elf", "-semihosting-config", semihosting], cwd=work,
                              capture_output=True, text=True, timeout=QEMU_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"qemu-system-arm did not finish within {QEMU_TIMEOUT} s (harness {' '.join(args)})")


def _check_frames_on_cortex_m(src: Path, work: Path, width: int, height: int, channels: int, quant: dict) -> int:
    """Every camera frame through the cross-compiled preprocess.c in QEMU; returns the bytes compared."""
    _cross_compile(src, work)
    table = preprocess.input_table(quant["scale"], quant["zero_point"], quant["dtype"])
    little_endian = np.dtype(quant["dtype"]).newbyteorder("<")  # the Cortex-M's byte order, whatever the host's
    compared = 0
    for index, rgb in enumerate(_camera_frames()):
        h, w = rgb.shape[:2]
        frame = _rgb565(rgb)
        (work / f"frame{index}").write_bytes(frame)
        result = _run(work, f"frame{index}", str(w), str(h), f"input{index}")
        assert result.returncode == 0, f"frame {index} ({w}x{h}): harness exited {result.returncode}: " \
                                       f"{result.stdout}{result.stderr}"
        got = (work / f"input{index}").read_bytes()
        pixels = preprocess.resize(_from_rgb565(frame, w, h), width, height, channels)
        expected = table[pixels].astype(little_endian).tobytes()
        assert len(expected) == width * height * channels * little_endian.itemsize
        assert got == expected, f"frame {index} ({w}x{h}) on the Cortex-M differs from the Python preprocessing"
        compared += len(got)
    return compared


def test_example_preprocessing_on_cortex_m_matches_python(built_project, tmp_path):
    """The example's generated src/preprocess.c (32x32 grayscale, int8) on six camera frames, 320x240 and
    smaller, on a Cortex-M3; and a harness that fails is seen to fail (exit status through semihosting)."""
    compared = _check_frames_on_cortex_m(built_project / FIRMWARE / "src", tmp_path, 32, 32, 1,
                                         _calibration(built_project)["input"])
    assert compared == 6 * 32 * 32
    result = _run(tmp_path, "no-such-frame", "320", "240", "unused")
    assert result.returncode == 1 and "cannot read 153600 bytes from no-such-frame" in result.stderr


@pytest.mark.parametrize("width,height,channels,quant", [
    (64, 16, 3, {"dtype": "int16", "scale": 0.00003, "zero_point": 0}),         # int16x8, crop the height
    (48, 40, 3, {"dtype": "int8", "scale": 0.0078125, "zero_point": -1}),       # colour, crop the width
])
def test_other_inputs_on_cortex_m_match_python(tmp_path, width, height, channels, quant):
    for name, text in preprocess_c.sources(width, height, channels, quant).items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    work = tmp_path / "run"
    work.mkdir()
    compared = _check_frames_on_cortex_m(tmp_path / "src", work, width, height, channels, quant)
    assert compared == 6 * width * height * channels * np.dtype(quant["dtype"]).itemsize
