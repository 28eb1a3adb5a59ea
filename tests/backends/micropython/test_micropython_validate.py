"""`doit validate` for firmware.backend micropython: the generated package's protocol server (board/te_serve.py) run
by the real MicroPython unix port, its console on a pseudo-terminal that the host opens with pyserial as it opens a
board's port. The whole test split of the shared trained example, byte for byte against calibrate; another model's
firmware refused with both digests; the port ending mid-run named by the sample reached; the device's refusals.
The board's main.py runs too, with the one stand-in here: a camera module (there is no camera), said so below."""
from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import xxhash
from conftest import REPO, digests, doit, make_project, one_line_error, private_copy, switched
from frames import assert_refusals

from tinyedge_tasks.backends.micropython import codegen, generate
from tinyedge_tasks.commands import capture
from tinyedge_tasks.config import boards
from tinyedge_tasks.device import frames
from tinyedge_tasks.device.link import Link
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.lowering.lower import lower
from tinyedge_tasks.preprocess import UNIT
from tinyedge_tasks.tflite import model_file
from tinyedge_tasks.tflite import runtime as tflm
from tinyedge_tasks.toolchains import mpremote

ZOO = REPO / "tests" / "fixtures" / "zoo"
ESP32CAM = REPO / "boards" / "esp32cam.yaml"
PACKAGE = Path("build/codegen/micropython")


@pytest.fixture(scope="module")
def mp_project(built_project, tmp_path_factory) -> Path:
    """The built example switched to firmware.backend micropython (codegen, calibrate, build, report rerun)."""
    return switched(built_project, tmp_path_factory, "mpvalidate", {"firmware": {"backend": "micropython"}})


@pytest.fixture
def copy(mp_project, tmp_path) -> Path:
    return private_copy(mp_project, tmp_path)


def test_the_unix_port_validated_over_a_pty_on_the_whole_test_split(copy):
    """`doit validate --port unix`: every output identical to calibrate's (the viper kernels' outputs.npy), the
    digest of the int8 .tflite in INFO and project.json, microseconds per inference and per operator; the console
    line te_serve prints passes through (--verbose) without breaking a frame; the report keeps the board estimate,
    since the unix port is not the board."""
    result = doit(copy, "validate", "--port", "unix", "--verbose")
    assert "starting the MicroPython unix port with the package for esp32cam" in result.stdout
    assert "tinyedge: serving the validation protocol 1 (linux, te_kernels_viper)" in result.stdout
    assert "validate: 254/254 samples, 0 differing" in result.stdout
    record = json.loads((copy / "build/validate/validate.json").read_text())
    calibration = json.loads((copy / "build/calibrate/calibration.json").read_text())
    index = json.loads((copy / "build/codegen/project.json").read_text())
    model = (copy / "build/quantize/model.tflite").read_bytes()
    assert record["port"].startswith("/dev/pts/")
    assert record["firmware"] == {"model_xxh3": xxhash.xxh3_64_hexdigest(model), "backend": "micropython",
                                  "board": "micropython unix port (generated for esp32cam)",
                                  "cycle_counter": "ticks_us", "clock_hz": None, "cycles_per_second": 1_000_000}
    assert index["model_xxh3"] == record["firmware"]["model_xxh3"]
    assert record["samples"] == record["identical_outputs"] == calibration["test_samples"] == 254
    assert record["largest_difference"] == 0 and record["first_difference"] is None
    assert record["accuracy"] == calibration["quantized_test_accuracy"] and record["argmax_agreement"] == 1.0
    latency = record["latency"]
    assert 0 < latency["cycles"]["min"] <= latency["cycles"]["median"] <= latency["cycles"]["max"]
    assert latency["ms"]["median"] == pytest.approx(latency["cycles"]["median"] / 1000, abs=1e-3)
    assert [r["op"] for r in record["layers"]] == [op.op for op in lower(model).ops]
    assert record["arena_used"] == record["arena_bytes"] == lower(model).arena_size
    assert record["link"]["bytes_from_device_per_sample"] == 12 + 16 + 8 * len(record["layers"]) + 10

    doit(copy, "report")
    report = (copy / "build/report/report.md").read_text()
    assert "Latency (estimate)" in report and "Latency (measured on the board)" not in report


def _other_model_package(folder: Path) -> str:
    """The zoo's tiny CNN printed as the example's package would be for the ESP32-CAM: another model's firmware.
    Its digest."""
    model = (ZOO / "tiny_cnn_int8_none.tflite").read_bytes()
    files, lowered = generate.model_files(model)
    quant, _ = model_file.io_details(model_file.interpreter(model))
    _, height, width, channels = quant["shape"]
    files["te_preprocess.py"] = generate.preprocess_source(width, height, channels, quant, UNIT)
    board = boards.load(ESP32CAM)
    files["te_info.py"] = generate.info_source(codegen.info(lowered, model, board))
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return xxhash.xxh3_64_hexdigest(model)


def test_another_model_in_the_unix_port_is_refused_with_both_digests(copy, tmp_path):
    """The host opens the pseudo-terminal's path as it opens /dev/ttyUSB0 (the test runs the unix port on it)."""
    theirs = _other_model_package(tmp_path / "other")
    ours = json.loads((copy / "build/codegen/project.json").read_text())["model_xxh3"]
    assert theirs != ours
    before = digests(copy)
    with mpremote.emulate(tmp_path / "other", tmp_path) as port:
        line = one_line_error(doit(copy, "validate", "--port", port, check=False))
    assert line.startswith(f"the board on {port} carries another model (model_xxh3 {theirs}) than this project's "
                           f"(model_xxh3 {ours}, build/codegen/project.json)")
    assert digests(copy) == before


def test_the_unix_port_ending_mid_run_names_the_sample_reached(copy):
    """The package's invoke made to end the interpreter at its sixth call (a board that resets): the host's read of
    the pseudo-terminal fails as a pulled cable does; nothing in build/ changes."""
    model_py = copy / PACKAGE / "te_model.py"
    model_py.write_text(model_py.read_text() + """
_invoke, _left = invoke, [5]


def invoke(data, k=kernels, mark=None):
    _left[0] -= 1
    if _left[0] < 0:
        raise SystemExit(3)
    return _invoke(data, k, mark)
""")
    before = digests(copy)
    line = one_line_error(doit(copy, "validate", "--port", "unix", check=False))
    assert line.startswith("the link to /dev/pts/") and " dropped: " in line
    assert "at sample 5 of 254 (5 validated)" in line and line.endswith("the MicroPython unix port had ended (exit 3)")
    assert digests(copy) == before
    assert not (copy / "build/validate").exists()


def test_the_micropython_device_refuses_what_it_cannot_do(tmp_path):
    """Device side, no trained project needed: CAPTURE -> ERROR "no camera" (no camera in the unix port), an INFER
    of the wrong size, a damaged frame and an unknown type -> ERROR in the C firmware's words; bytes that are no
    frame are skipped; after all that it still answers, with the outputs of the generated model."""
    _other_model_package(tmp_path / "package")
    with mpremote.emulate(tmp_path / "package", tmp_path) as port, Link(port, 115200) as link:
        info = link.hello()
        assert info["cycle_counter"] == "ticks_us" and info["input"]["bytes"] == 1024
        assert info["platform"] == "linux" and info["kernels"] == "te_kernels_viper"
        assert_refusals(link, noise=b"noise \xa5 not a frame")
        link.send(0x44)
        with pytest.raises(TinyedgeError, match="answered ERROR: unknown frame type 0x44"):
            link.answer(frames.INFO, 10)
        image = np.load(ZOO / "data.npz")["x_test"][:1]
        model = (ZOO / "tiny_cnn_int8_none.tflite").read_bytes()
        engine = model_file.interpreter(model)
        result = link.infer(7, tflm.quantize_images(engine, image, UNIT).tobytes())
        _, out = model_file.io_details(engine)
        expected = np.round(tflm.predict(engine, image, UNIT) / out["scale"] + out["zero_point"]).astype(np.int8)
        assert result.index == 7 and result.output == expected.tobytes()
        assert len(result.layer_cycles) == len(info["layers"]) and sum(result.layer_cycles) <= result.cycles


CAMERA = '''# A stand-in for cnadler86/micropython-camera-API's module (no camera here): a fixed RGB565 test pattern.
class PixelFormat:
    RGB565 = 1


class FrameSize:
    QVGA = 5


class Camera:
    def __init__(self, **pins):
        self.frame = bytes((x * 7 + y) & 0xFF for y in range(240) for x in range(640))

    def capture(self):
        return memoryview(self.frame)
'''


def _board_package(folder: Path) -> Path:
    """A package with the board's main.py for the ESP32-CAM and the stand-in camera module."""
    _other_model_package(folder)
    board = boards.load(ESP32CAM)
    (folder / "main.py").write_text(generate.main_source([str(d) for d in range(10)], board.camera, None))
    (folder / "camera.py").write_text(CAMERA)
    return folder


def test_main_py_hands_the_console_to_the_protocol(tmp_path):
    """The board's main.py in the unix port, with a stand-in camera module (the test's, said so above): its
    super-loop classifies frames and prints, and the host's first frame turns it into the protocol server, whose
    CAPTURE sends the camera's frame as it is and whose INFER gives the model's outputs. HELLOs that queued while
    the loop was busy are dropped, not each answered with an INFO that would come in place of a RESULT."""
    folder = _board_package(tmp_path / "package")
    with mpremote.emulate(folder, tmp_path, "import main") as port, Link(port, 115200) as link:
        while b"top: " not in link.console:   # the super-loop's line: a frame went through the model
            assert link.receive(1) is None
        link.serial.write(frames.encode(frames.HELLO) * 3)   # a host repeating HELLO while the loop runs
        assert link.hello()["backend"] == "micropython"
        link.send(frames.CAPTURE)
        frame = link.answer(frames.FRAME, 10).payload
        assert struct.unpack_from("<HHB", frame) == (320, 240, 2)
        assert frame[5:] == bytes((x * 7 + y) & 0xFF for y in range(240) for x in range(640))
        assert len(link.infer(3, bytes(1024)).output) == 10


def test_doit_capture_saves_the_frames_of_main_py(tmp_path):
    """`doit capture` against the board's main.py (the stand-in camera): its RGB565 frames (high byte first, as the
    camera driver stores them) saved as PNG in the class folder."""
    from PIL import Image
    project = make_project(tmp_path / "project", {"dataset": {"source": "data"}})
    for label in ("3", "8"):   # an image-folder data set needs two classes
        (project / "data" / label).mkdir(parents=True)
        Image.new("L", (8, 8), 0).save(project / "data" / label / "first.png")
    with mpremote.emulate(_board_package(tmp_path / "package"), tmp_path, "import main") as port:
        result = doit(project, "capture", "--port", port, "--label", "3", "-n", "2")
    assert "frame 2/2: data/3/capture-0001.png" in result.stdout
    sent = struct.pack("<HHB", 320, 240, 2) + bytes((x * 7 + y) & 0xFF for y in range(240) for x in range(640))
    for name in ("capture-0000.png", "capture-0001.png"):   # as the host decodes the stand-in's pattern
        saved = np.asarray(Image.open(project / "data" / "3" / name))
        assert saved.shape == (240, 320, 3) and np.array_equal(saved, np.asarray(capture.image(sent)))


def test_the_crc_without_binascii_is_zlibs(tmp_path):
    """A port built without binascii.crc32 takes te_serve's bitwise loop: the same CRC as the host's zlib."""
    _other_model_package(tmp_path / "package")
    data = bytes(range(256)) * 3 + b"123456789"
    code = f"import te_serve; te_serve.crc32 = None; print(te_serve._crc({data!r}), te_serve._crc(b''))"
    result = subprocess.run(mpremote.unix_port() + ["-c", code], cwd=tmp_path / "package", capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.split() == [str(zlib.crc32(data)), "0"], result.stdout + result.stderr
