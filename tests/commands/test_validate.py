"""`doit validate`: the real Cortex-M firmware in qemu-system-arm, its UART on a loopback socket, validated over the
whole test split of the shared trained example; and each fault a user can meet, one line, build/ untouched.

There is no board here. The fault tests talk to a small fake device on a loopback socket, written below, that
speaks the protocol with the host's own encoder and misbehaves on purpose; the main test and the device-side test
use the real firmware (tinyedge_tasks/toolchains/qemu/serve.c and tinyedge_tasks/firmware/te_protocol.c)."""
from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import digests, doit, one_line_error, private_copy, ran, switched, write_manifest
from frames import FakeBoard, assert_refusals, fake_board, fake_info
from tinyedge_tasks.device import frames
from tinyedge_tasks.device.link import Link
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.toolchains import qemu

pytestmark = pytest.mark.qemu   # the shared project is switched to the emulated board (its calibrate runs QEMU)

@pytest.fixture(scope="module")
def qemu_project(built_project, tmp_path_factory) -> Path:
    """The built example switched to the emulated Cortex-M4 and the C backend (codegen, calibrate, report rerun)."""
    changes = {"board": "qemu-cortex-m4", "firmware": {"backend": "c"}}
    return switched(built_project, tmp_path_factory, "validate", changes)


@pytest.fixture
def copy(qemu_project, tmp_path) -> Path:
    return private_copy(qemu_project, tmp_path)


def test_the_firmware_in_qemu_validated_over_the_whole_test_split(copy):
    """The real firmware on the emulated board: every output identical to calibrate's, the board's accuracy
    calibrate's, cycles per inference those calibrate counted (the same instructions), per layer too; the report
    shows the measured figures in place of the estimate."""
    assert "Latency (estimate)" in (copy / "build/report/report.md").read_text()
    result = doit(copy, "validate")
    assert "starting the emulated board qemu-cortex-m4" in result.stdout
    assert "validate: 254/254 samples, 0 differing" in result.stdout
    record = json.loads((copy / "build/validate/validate.json").read_text())
    calibration = json.loads((copy / "build/calibrate/calibration.json").read_text())
    index = json.loads((copy / "build/codegen/project.json").read_text())
    assert record["port"].startswith("socket://127.0.0.1:")
    assert record["firmware"]["model_xxh3"] == index["model_xxh3"] and len(index["model_xxh3"]) == 16
    assert record["samples"] == record["identical_outputs"] == calibration["test_samples"] == 254
    assert record["largest_difference"] == 0 and record["first_difference"] is None
    assert record["argmax_agreement"] == 1.0 and record["accuracy"] == calibration["quantized_test_accuracy"]
    cycles = record["latency"]["cycles"]
    assert cycles["min"] <= calibration["instructions_per_inference"] <= cycles["max"] < 1.01 * cycles["min"]
    assert record["latency"]["ms"]["median"] == pytest.approx(cycles["median"] / 25e6 * 1e3, rel=1e-4)
    layers = [r["cycles"] for r in record["layers"]]
    plan = json.loads((copy / "build/codegen/memory_plan.json").read_text())
    assert [r["op"] for r in record["layers"]] == [op["op"] for op in plan["operators"]]
    assert abs(sum(layers) - cycles["median"]) < 0.01 * cycles["median"]
    assert record["arena_used"] == record["arena_bytes"] == plan["arena_bytes"]
    assert record["link"]["bytes_to_device_per_sample"] == 12 + 4 + 1024

    assert "report" in ran(doit(copy, "report"))
    report = (copy / "build/report/report.md").read_text()
    assert "Latency (measured on the board)" in report and "Latency (estimate)" not in report
    assert index["model_xxh3"] in report and record["date"] in report
    first = plan["operators"][0]
    assert first["op"] == "CONV_2D+MAX_POOL_2D"   # conv1 with its pool fused (the C backend's lowering)
    assert f"| {first['op']} | {first['layer']} | {first['macs']} | {layers[0]} |" in report


def test_the_qemu_firmware_refuses_what_it_cannot_do(qemu_project, tmp_path):
    """Device side: CAPTURE -> ERROR "no camera", an INFER of the wrong size and a damaged frame -> ERROR; console
    text at boot never breaks the protocol, and after all that it still answers."""
    firmware = qemu_project / "build/codegen/firmware"
    with qemu.emulate(firmware, tmp_path) as url, Link(url, 115200) as link:
        info = link.hello()
        assert info["cycle_counter"] == "systick-icount" and info["input"]["bytes"] == 1024
        assert_refusals(link)
        assert link.infer(7, bytes(1024)).index == 7


@pytest.fixture
def fake(copy):
    """Start a FakeBoard for the test's behaviour; closed at the end."""
    boards = []

    def start(on):
        boards.append(FakeBoard(on))
        return boards[-1].url
    yield start
    for board in boards:
        board.close()


def test_fault_no_device_on_the_port(copy):
    before = digests(copy)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]   # closed when the block ends: nothing listens there
    line = one_line_error(doit(copy, "validate", "--port", f"socket://127.0.0.1:{port}", check=False))
    assert line.startswith(f"no device on socket://127.0.0.1:{port} (") and "Connection refused" in line
    missing = one_line_error(doit(copy, "validate", "--port", "/dev/ttyUSB-none", check=False))
    assert missing.startswith("no board on serial port /dev/ttyUSB-none: the device does not exist")
    assert digests(copy) == before


def test_fault_a_device_that_does_not_answer(copy, fake):
    """A firmware without the protocol (it only prints its console lines) or a wrong speed: no INFO."""
    before = digests(copy)

    def chatter(frame, connection):
        connection.sendall(b"top class 3 (0.91), 12 ms\r\n")
    line = one_line_error(doit(copy, "validate", "--port", fake(chatter), "--timeout", "2", check=False))
    assert line.startswith("no answer from socket://127.0.0.1:") and "serial_speed" in line
    assert line.endswith("It printed: 'top class 3 (0.91), 12 ms'")
    silent = one_line_error(doit(copy, "validate", "--port", fake(lambda f, c: None), "--timeout", "1.5",
                                  check=False))
    assert silent.startswith("no answer from") and silent.endswith("It sent nothing.")
    assert digests(copy) == before


def test_fault_another_model_on_thefake_board(copy, fake):
    before = digests(copy)
    ours = json.loads((copy / "build/codegen/project.json").read_text())["model_xxh3"]

    def other(frame, connection):
        connection.sendall(frames.encode(frames.INFO, fake_info(copy, "0123456789abcdef")))
    line = one_line_error(doit(copy, "validate", "--port", fake(other), check=False))
    assert "carries another model (model_xxh3 0123456789abcdef)" in line and f"(model_xxh3 {ours}," in line
    assert digests(copy) == before


def test_a_short_result_is_refused_in_one_line():
    """No board here: a fake whose RESULT claims 5 layer counts and carries none (the link alone, no doit)."""
    def short(frame, connection):
        if frame.kind == frames.INFER:
            connection.sendall(frames.encode(frames.RESULT, struct.pack("<IQI", 0, 1, 5)))
    board = FakeBoard(short)
    try:
        with Link(board.url, 115200, timeout=5) as link, \
                pytest.raises(TinyedgeError, match="sent a RESULT of 16 bytes, too short for its header and layer"):
            link.infer(0, bytes(4))
    finally:
        board.close()


def test_fault_a_link_that_drops_mid_run(copy, fake):
    before = digests(copy)
    line = one_line_error(doit(copy, "validate", "--port", fake(fake_board(copy, after_results=3)), "--samples", "10",
                                check=False))
    assert line.startswith("the link to socket://127.0.0.1:") and "dropped" in line
    assert "at sample 3 of 10 (3 validated)" in line
    assert digests(copy) == before


def test_fault_a_corrupt_frame(copy, fake):
    before = digests(copy)
    line = one_line_error(doit(copy, "validate", "--port", fake(fake_board(copy, corrupt_at=2)), "--samples", "5",
                                check=False))
    assert line.startswith("corrupt RESULT frame at byte ") and "CRC 0x" in line
    assert digests(copy) == before


def test_a_mismatch_names_the_first_differing_sample_and_output(copy, fake):
    """The fake board computes sample 4, output 6 one step off: validate.json is written, the exit non-zero."""
    def off(index, output):
        if index == 4:
            output[6] += 1 if output[6] < 127 else -1
    before = digests(copy)
    result = doit(copy, "validate", "--port", fake(fake_board(copy, change=off)), "--samples", "8", check=False)
    line = one_line_error(result)
    assert line.startswith("the board's outputs differ from calibrate's: first at sample 4, output 6")
    assert "(1 samples differ, largest difference 1)" in line
    record = json.loads((copy / "build/validate/validate.json").read_text())
    assert record["identical_outputs"] == 7 and record["first_difference"] == {"sample": 4, "output": 6}
    assert record["latency"]["cycles"]["median"] == 100 and record["layers"] == []
    assert {k: v for k, v in digests(copy).items() if k != "validate/validate.json"} == before


def test_ctrl_c_during_validate_is_one_line_and_exit_130(copy, fake):
    """The fake answers INFO, then never a RESULT: Ctrl-C while validate waits."""
    def mute(frame, connection):
        if frame.kind == frames.HELLO:
            connection.sendall(frames.encode(frames.INFO, fake_info(copy)))
    before = digests(copy)
    process = subprocess.Popen([sys.executable, "-m", "doit", "validate", "--port", fake(mute), "--timeout", "60"],
                               cwd=copy, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if "sending" in line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert err.strip() == "interrupted during validate; what it finished is kept, run it again to go on"
    assert digests(copy) == before


def _camera(frames_to_send: list[bytes], stall_after: int | None = None):
    """A fake board with a camera (no board here): INFO, then one FRAME per CAPTURE from the list, in turn;
    after `stall_after` frames it stops answering."""
    sent = []

    def on(frame, connection):
        if frame.kind == frames.HELLO:
            connection.sendall(frames.encode(frames.INFO, _info_any()))
        elif frame.kind == frames.CAPTURE and len(sent) != stall_after:
            picture = frames_to_send[len(sent) % len(frames_to_send)]
            connection.sendall(b"cam: frame\n" + frames.encode(frames.FRAME, picture))
            sent.append(frame)
    return on


def _info_any() -> bytes:
    return json.dumps({"protocol": 1, "model_xxh3": "0" * 16, "backend": "tflm", "board": "fake-cam", "clock_hz": 1,
                       "cycle_counter": "ccount", "cycles_per_second": 1, "input": {}, "output": {},
                       "arena_bytes": 1, "arena_used": None, "layers": []}).encode()


@pytest.fixture
def folder_project(copy) -> Path:
    """The project with an image-folder data set (two classes of one image each), where capture saves."""
    from PIL import Image
    for label in ("0", "1"):
        (copy / "data" / label).mkdir(parents=True)
        Image.new("L", (8, 8), int(label) * 200).save(copy / "data" / label / "first.png")
    write_manifest(copy, {"board": "qemu-cortex-m4", "firmware": {"backend": "c"}, "dataset": {"source": "data"}})
    return copy


def test_capture_saves_the_boards_frames_as_png_and_never_overwrites(folder_project, fake):
    from PIL import Image
    gray = struct.pack("<HHB", 3, 2, 0) + bytes([0, 50, 100, 150, 200, 250])
    rgb565 = struct.pack("<HHB", 2, 1, 2) + bytes([0xF8, 0x00, 0x07, 0xE0])   # big-endian: pure red, pure green
    result = doit(folder_project, "capture", "--port", fake(_camera([gray, rgb565])), "--label", "1", "-n", "2")
    assert "frame 2/2: data/1/capture-0001.png" in result.stdout
    first = np.asarray(Image.open(folder_project / "data/1/capture-0000.png"))
    assert first.shape == (2, 3) and first.ravel().tolist() == [0, 50, 100, 150, 200, 250]
    second = np.asarray(Image.open(folder_project / "data/1/capture-0001.png"))
    assert second.tolist() == [[[255, 0, 0], [0, 255, 0]]]
    (folder_project / "data/1/capture-0001.png").rename(folder_project / "data/1/capture-0005.png")
    doit(folder_project, "capture", "--port", fake(_camera([gray])), "--label", "1")
    names = sorted(p.name for p in (folder_project / "data/1").iterdir())
    assert names == ["capture-0000.png", "capture-0002.png", "capture-0005.png", "first.png"]
    assert np.asarray(Image.open(folder_project / "data/1/capture-0005.png")).tolist() == second.tolist()


def test_capture_refusals_and_ctrl_c_keeps_the_frames_so_far(folder_project, fake):
    """Not an image folder, or a board without a camera: one line. Ctrl-C after one frame: it stays, whole."""
    line = one_line_error(doit(folder_project, "capture", "--port", "socket://127.0.0.1:1", "--label", "1",
                                check=False), "capture")
    assert line.startswith("no device on socket://127.0.0.1:1")

    def no_camera(frame, connection):
        answer = _info_any() if frame.kind == frames.HELLO else b"no camera"
        connection.sendall(frames.encode(frames.INFO if frame.kind == frames.HELLO else frames.ERROR, answer))
    line = one_line_error(doit(folder_project, "capture", "--port", fake(no_camera), "--label", "1", check=False),
                           "capture")
    assert line.endswith("answered ERROR: no camera")

    gray = struct.pack("<HHB", 2, 2, 0) + bytes(4)
    process = subprocess.Popen([sys.executable, "-m", "doit", "capture", "--port", fake(_camera([gray], 1)),
                                "--label", "0", "-n", "3"], cwd=folder_project, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    for out_line in process.stdout:
        if "frame 1/3" in out_line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == ("interrupted during capture; what it finished is kept, "
                                                         "run it again to go on")
    assert sorted(p.name for p in (folder_project / "data/0").iterdir()) == ["capture-0000.png", "first.png"]


def test_capture_needs_an_image_folder_data_set(copy):
    line = one_line_error(doit(copy, "capture", "--port", "socket://127.0.0.1:1", "--label", "3", check=False),
                           "capture")
    assert line.startswith("tinyedge.yaml: dataset.source is 'sklearn:digits'; capture saves into an image folder")


def test_int16_outputs_are_read_as_int16():
    """An int16x8 model's outputs (TFLM calibrate keeps them int16): two bytes per value, compared as int16, the
    difference in int16 steps (no board: the record alone, from RESULTs as the link gives them)."""
    from types import SimpleNamespace

    from tinyedge_tasks.commands.validate import _record
    from tinyedge_tasks.device.link import Result
    reference = np.array([[-300, 2000, 7], [5, -6, 32767]], np.int16)
    sent = reference.copy()
    sent[1, 2] = -32768
    results = [Result(i, 100, [], row.tobytes()) for i, row in enumerate(sent)]
    info = {"model_xxh3": "0" * 16, "backend": "tflm", "board": "fake", "cycle_counter": "ccount", "clock_hz": 1,
            "cycles_per_second": 1000, "input": {"bytes": 4}, "layers": [], "arena_bytes": 1, "arena_used": None}
    record = _record(info, SimpleNamespace(board="fake"), "socket://x", results, 1.0, reference, np.array([1, 2]),
                     SimpleNamespace(runtime=None))
    assert record["comparison"] == "bit for bit" and record["identical_outputs"] == record["agreeing_outputs"] == 1
    assert record["first_difference"] == {"sample": 1, "output": 2} and record["largest_difference"] == 65535
    assert (record["accuracy"], record["calibrate_accuracy"]) == (0.5, 1.0)   # sample 1 lost its top class
    assert record["link"]["bytes_from_device_per_sample"] == 12 + 16 + 6
