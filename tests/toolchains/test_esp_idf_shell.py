"""tinyedge's ESP-IDF shell itself (toolchains/esp_idf_shell/te_shell.c: app_main, camera, LED, console link,
cycles, the validation protocol), as `doit codegen` writes it for the ESP32-CAM around the C backend's model
adapter, compiled with the host gcc and run on a pseudo-terminal; the host side is tinyedge's own link
(tinyedge_tasks/device, pyserial on the pty's path), as `doit validate` uses it.

The one stand-in: there is no ESP32 here, so the ESP-IDF and esp32-camera calls the shell makes (UART driver, cycle
counter, camera, GPIO, FreeRTOS delays, logging) are the thin host layer in tests/esp_idf_host/ (declared with the
signatures of ESP-IDF 5.3 and esp32-camera 2.1.5): the UART is the pty, "cycles" are nanoseconds, the camera hands
out one synthetic frame. Everything else is the generated firmware's own C."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tty
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import xxhash
import yaml
from conftest import doit, tflm_outputs, write_manifest

from tinyedge_tasks.device import frames
from tinyedge_tasks.device.link import Link
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.backends.c.generate import lower_model
from tinyedge_tasks.preprocess import input_table, transform_of

HOST = Path(__file__).parent / "esp_idf_host"
FIRMWARE = Path("build/codegen/firmware")


@pytest.fixture(scope="module")
def shell_project(built_project, tmp_path_factory) -> Path:
    """The example on the ESP32-CAM with firmware.backend c, through `doit calibrate` (codegen, then the host
    build of the same C on the test split, kept as calibrate/outputs.npy)."""
    project = tmp_path_factory.mktemp("shell") / "project"
    shutil.copytree(built_project, project)
    write_manifest(project, {"firmware": {"backend": "c", "led_class": "7"}})
    doit(project, "calibrate")
    return project


def _gcc(src: Path, *args: str) -> subprocess.CompletedProcess:
    """Every C file of the firmware's src/ and the host layer, C99, every warning an error."""
    sources = sorted(str(p) for p in src.glob("*.c"))
    return subprocess.run(["gcc", "-std=c99", "-O2", "-pthread", "-Wall", "-Wextra", "-Werror", "-DTINYEDGE_LAYER_HOOK",
                           "-I", str(HOST), "-I", str(src), *sources, str(HOST / "esp_idf_host.c"), *args],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def shell_binary(shell_project, tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("shell_bin") / "firmware"
    compiled = _gcc(shell_project / FIRMWARE / "src", "-o", str(exe))
    assert compiled.returncode == 0, compiled.stderr
    return exe


@contextmanager
def running(exe: Path, env: dict | None = None):
    """The firmware on the master side of a pseudo-terminal (its UART) and tinyedge's link on the slave side
    (pyserial on its path), opened before the firmware starts so that no boot line is lost. The slave is raw from
    the start, as a UART is: no echo, no newline translation."""
    master, slave = os.openpty()
    tty.setraw(slave)
    link = Link(os.ttyname(slave), 115200, timeout=20)
    process = subprocess.Popen([str(exe)], stdin=master, stdout=master, stderr=subprocess.PIPE,
                               env={**os.environ, **(env or {})})
    try:
        yield link, process
    finally:
        process.kill()
        process.wait(timeout=30)
        link.serial.close()
        os.close(master)
        os.close(slave)


def _test_split(project: Path, tflite: bytes) -> np.ndarray:
    """The test split quantized as calibrate quantizes it: the input transform, then the model's input params."""
    model = lower_model(tflite)
    manifest = yaml.safe_load((project / "tinyedge.yaml").read_text())
    with np.load(project / "build/dataset/data.npz") as data:
        images = data["x_test"]
    table = input_table(model.input.scale, model.input.zero_point, "int8", transform_of(manifest["dataset"]["input"]))
    return table[images]


def test_shell_answers_hello_and_infers_every_test_sample_like_calibrate(shell_project, shell_binary):
    """HELLO -> INFO with the model's XXH3 (the same as project.json's) and the board, input, output and layers;
    INFER of every test sample -> RESULT with the TFLM runtime's outputs byte for byte (what calibrate checks the
    C backend against), the invoke's cycles and one count per operator; the camera set up with the budget's frame
    buffers; console text in between never breaks a frame."""
    tflite = (shell_project / "build/quantize/model.tflite").read_bytes()
    index = json.loads((shell_project / "build/codegen/project.json").read_text())
    inputs = _test_split(shell_project, tflite)
    expected = tflm_outputs(tflite, inputs)
    assert np.array_equal(np.load(shell_project / "build/calibrate/outputs.npy"), expected.reshape(len(inputs), -1))
    model = lower_model(tflite)
    with running(shell_binary) as (link, _):
        info = link.hello()
        results = [link.infer(i, sample.tobytes()) for i, sample in enumerate(inputs)]
        console = bytes(link.console).decode()
    assert info["model_xxh3"] == index["model_xxh3"] == xxhash.xxh3_64_hexdigest(tflite)
    assert (info["backend"], info["board"], info["cycle_counter"], info["clock_hz"]) == \
        ("c", "esp32cam", "ccount", 240_000_000)
    assert info["input"]["bytes"] == inputs[0].nbytes == 1024
    assert info["input"]["zero_point"] == model.input.zero_point
    assert info["output"]["shape"] == list(model.output.shape) and info["arena_used"] == model.arena_size
    assert info["layers"] == [op.op for op in model.ops]
    outputs = np.stack([np.frombuffer(r.output, np.int8) for r in results])
    assert len(outputs) == len(inputs) > 200
    assert np.array_equal(outputs, expected), f"{int((outputs != expected).any(axis=1).sum())} samples differ"
    assert all(len(r.layer_cycles) == len(model.ops) and 0 < sum(r.layer_cycles) <= r.cycles for r in results)
    assert "digits-esp32cam on AI Thinker ESP32-CAM (c)" in console


def test_doit_validate_over_the_pty(shell_project, shell_binary):
    """`doit validate --port /dev/pts/N`, the command a user runs against a board, against the shell on a pty:
    every test sample identical to calibrate's outputs, per-operator cycles recorded, while another task logs a
    line every 100 us (TE_HOST_LOG_TASK): the shell holds the console for each whole frame, so no line lands in
    one (without that lock this run fails on corrupt frames)."""
    with running(shell_binary, {"TE_HOST_LOG_TASK": "1"}) as (link, _):
        link.serial.close()   # doit opens the port itself
        result = doit(shell_project, "validate", "--port", link.port, "--verbose")
    assert result.stdout.count("another task's log line") > 100
    record = json.loads((shell_project / "build/validate/validate.json").read_text())
    assert record["samples"] == record["identical_outputs"] > 200, result.stdout
    assert record["largest_difference"] == 0 and record["argmax_agreement"] == 1.0
    assert record["firmware"]["backend"] == "c" and record["firmware"]["cycle_counter"] == "ccount"
    assert f"{record['samples']}/{record['samples']} samples, 0 differing" in result.stdout


def test_shell_captures_the_frame_as_the_camera_gives_it_and_refuses_bad_frames(shell_project, shell_binary):
    """CAPTURE -> FRAME: the camera's RGB565 frame byte for byte, after a camera set up with two PSRAM buffers and
    CAMERA_GRAB_LATEST (the budget's), whole while another task logs; an INFER of the wrong length and a corrupt
    frame each get an ERROR naming the problem, and the link keeps working."""
    with running(shell_binary, {"TE_HOST_LOG_TASK": "1"}) as (link, process):
        link.hello()
        link.send(frames.CAPTURE)
        frame = link.answer(frames.FRAME, 20)
        with pytest.raises(TinyedgeError, match="answered ERROR: input length 10, expected 1024"):
            link.infer(3, bytes(10))
        corrupt = bytearray(frames.encode(frames.HELLO))
        corrupt[-1] ^= 0xFF
        link.serial.write(bytes(corrupt))
        with pytest.raises(TinyedgeError, match="answered ERROR: frame type 0x01: CRC mismatch"):
            link.answer(frames.INFO, 10)
        assert link.hello()["backend"] == "c"
        process.kill()
        setup = process.stderr.read().decode()
    budget = json.loads((shell_project / "build/codegen/budget.json").read_text())
    assert budget["arena"]["frames"] == {"count": 2, "bytes": 2 * 320 * 240 * 2, "place": "psram"}
    width, height, kind = struct.unpack_from("<HHB", frame.payload)
    assert (width, height, kind) == (320, 240, 2)
    assert frame.payload[5:] == bytes((7 * i + 3) % 256 for i in range(320 * 240 * 2))
    assert "camera: fb_count 2 fb_location 0 grab_mode 1 pin_sccb_sda 26 xclk_freq_hz 20000000" in setup
    assert "uart: UART0 at 115200 baud" in setup


def test_shell_without_a_camera_still_validates(shell_binary):
    """A camera that fails to start is logged and the protocol still runs: CAPTURE gets ERROR "no camera"."""
    with running(shell_binary, {"TE_HOST_NO_CAMERA": "1"}) as (link, _):
        assert link.hello()["board"] == "esp32cam"
        link.send(frames.CAPTURE)
        with pytest.raises(TinyedgeError, match="answered ERROR: no camera"):
            link.answer(frames.FRAME, 10)
        console = bytes(link.console).decode()
    assert "camera init failed: check the camera ribbon and boards/esp32cam.yaml pins" in console


def test_the_host_layer_refuses_a_call_esp_idf_does_not_have(shell_project, tmp_path):
    """The stand-in headers are not permissive: a call with another signature than esp32-camera's fails."""
    broken = tmp_path / "src"
    shutil.copytree(shell_project / FIRMWARE / "src", broken)
    shell = broken / "te_shell.c"
    shell.write_text(shell.read_text().replace("esp_camera_fb_return(frame);", "esp_camera_fb_return(frame, 0);"))
    assert _gcc(broken, "-fsyntax-only").returncode != 0
