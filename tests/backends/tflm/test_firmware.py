"""Firmware: boards as data, codegen, the budget check, `doit build`/`flash`/`monitor` without a board or network.

Everything runs for real: the doit command line, PlatformIO's own config parser and `pio` binary, Espressif's
component manager and esp-idf-kconfig on the ESP-IDF project files, the host gcc on the generated preprocessing C. The only stand-in is in test_monitor_reads_the_board: a pseudo-terminal
plays the board behind the serial port.
"""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xxhash
import yaml

from conftest import REPO, doit, ran, tflm_outputs, write_manifest
from frames import FIRMWARE, calibration_of, camera_frames, from_rgb565, rgb565
from tinyedge_tasks import preprocess
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.backends.tflm import codegen, resolver, scratch
from tinyedge_tasks.preprocess import c as preprocess_c
from tinyedge_tasks.toolchains import esp_idf

HERE = Path(__file__).parent
UPSTREAM = {"dataset", "train", "prune", "quantize", "calibrate"}


def test_platformio_ini_read_back_by_platformio(built_project):
    from platformio.project.config import ProjectConfig
    config = ProjectConfig(str(built_project / FIRMWARE / "platformio.ini"))
    assert config.envs() == ["esp32cam"]
    assert config.default_envs() == ["esp32cam"]
    env = "env:esp32cam"
    assert config.get(env, "platform") == "espressif32@6.9.0"
    assert config.get(env, "board") == "esp32cam"
    assert config.get(env, "framework") == ["espidf"]
    assert config.get(env, "board_build.partitions") == "partitions.csv"
    assert config.get(env, "monitor_speed") == 115200
    assert not config.get(env, "lib_deps") and not config.get(env, "build_flags")  # components: idf_component.yml
    index = json.loads((built_project / "build/codegen/project.json").read_text())
    assert index["toolchain"] == "platformio" and index["folder"] == "firmware"
    assert set(index["files"]) == {"platformio.ini", "CMakeLists.txt", "sdkconfig.defaults", "partitions.csv",
                                   "src/idf_component.yml", "src/CMakeLists.txt", "src/model_data.h",
                                   "src/model_data.cc", "src/preprocess.c", "src/preprocess.h", "src/te_shell.c",
                                   "src/te_model.h", "src/te_app.h", "src/te_protocol.c", "src/te_protocol.h",
                                   "src/te_model_tflm.cc"}
    partitions = (built_project / FIRMWARE / "partitions.csv").read_text()
    assert "factory,  app,  factory, 0x10000,  0x300000" in partitions  # the board's 3 MB app partition


def test_idf_component_manifest_validated_by_the_component_manager(built_project, tmp_path):
    from idf_component_tools.manager import ManifestManager
    manager = ManifestManager(built_project / FIRMWARE / "src", "src").validate()
    assert manager._validation_errors == []
    pins = {req.name: str(req.version_spec) for req in manager.manifest.requirements if not req.meta}
    pinned = {**esp_idf.CAMERA_COMPONENTS, **codegen.COMPONENTS}   # the shell's camera, TFLM's own
    assert pins == {name: f"=={c['version']}" for name, c in pinned.items()}
    assert tuple(map(int, pins["espressif/esp-tflite-micro"][2:].split("."))) >= (1, 3, 4)  # per-channel FC
    (tmp_path / "idf_component.yml").write_text('dependencies:\n  espressif/esp-nn:\n    version: "==1.x.y"\n')
    assert ManifestManager(tmp_path, "src").validate()._validation_errors  # the validator does catch a bad pin


# Symbol types of the non-bool settings tinyedge writes (as in ESP-IDF 5.3's Kconfig); the rest are bools.
KCONFIG_TYPES = {"CONFIG_IDF_TARGET": "string", "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME": "string",
                 "CONFIG_ESP_MAIN_TASK_STACK_SIZE": "int"}


def _sdkconfig(path: Path, tmp_path: Path) -> dict[str, str]:
    """sdkconfig.defaults parsed by esp-idf-kconfig against a Kconfig declaring its symbols; every setting has its
    reason on the line above."""
    import esp_kconfiglib
    text = path.read_text()
    keys = re.findall(r"^(CONFIG_\w+)=", text, re.MULTILINE)
    (tmp_path / "Kconfig").write_text("".join(
        f'config {key[7:]}\n    {KCONFIG_TYPES.get(key, "bool")} "{key}"\n' for key in keys))
    kconfig = esp_kconfiglib.Kconfig(str(tmp_path / "Kconfig"), warn_to_stderr=False)
    kconfig.load_config(str(path))
    assert kconfig.warnings == []
    lines = text.splitlines()
    assert all(lines[i - 1].startswith("# ") for i, line in enumerate(lines) if line.startswith("CONFIG_"))
    return {key: kconfig.syms[key[7:]].str_value for key in keys}


def test_sdkconfig_defaults_parsed_back_by_esp_idf_kconfig(built_project, tmp_path):
    values = _sdkconfig(built_project / FIRMWARE / "sdkconfig.defaults", tmp_path)
    assert values["CONFIG_IDF_TARGET"] == "esp32"
    assert values["CONFIG_ESPTOOLPY_FLASHMODE_DIO"] == values["CONFIG_SPIRAM"] == "y"  # the board's, not qio
    assert values["CONFIG_COMPILER_OPTIMIZATION_PERF"] == values["CONFIG_NN_OPTIMIZED"] == "y"
    assert values["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"] == "partitions.csv"
    assert values["CONFIG_ESP_MAIN_TASK_STACK_SIZE"] == "8192"


def test_model_array_is_the_calibrated_tflite(built_project):
    source = (built_project / FIRMWARE / "src/model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_model_data[]" in source
    body = source.split("g_model_data[] = {", 1)[1].split("};", 1)[0]
    decoded = bytes(int(value, 16) for value in re.findall(r"0x([0-9a-f]{2})", body))
    expected = (built_project / "build/quantize/model.tflite").read_bytes()
    assert decoded == expected
    assert f"g_model_data_len = {len(expected)};" in source


def test_calibrate_keeps_the_raw_tflm_outputs_that_validate_compares(built_project):
    """calibrate/outputs.npy: the TFLM runtime's own int8 output bytes for every test sample, quantized as
    `doit validate` sends them (what the ESP-IDF shell's TFLM adapter must answer)."""
    import numpy as np
    model = (built_project / "build/quantize/model.tflite").read_bytes()
    with np.load(built_project / "build/dataset/data.npz") as data:
        inputs = preprocess.quantize(data["x_test"], calibration_of(built_project)["input"], preprocess.UNIT)
    kept = np.load(built_project / "build/calibrate/outputs.npy")
    assert kept.dtype == np.int8 and len(kept) == len(inputs) == 254
    assert np.array_equal(kept, tflm_outputs(model, inputs))


def test_project_index_says_what_the_firmware_is_given(built_project):
    """codegen/project.json's input: the camera's uint8 pixels of the data set's shape, the transform and the
    quantization the firmware's table applies (the calibrated model's own)."""
    quant = json.loads((built_project / "build/calibrate/calibration.json").read_text())["input"]
    record = json.loads((built_project / "build/codegen/project.json").read_text())["input"]
    assert record == {"kind": "image", "shape": [32, 32, 1], "given": "uint8",
                      "transform": {"divisor": 255.0, "offset": 0.0}, "dtype": "int8", "scale": quant["scale"],
                      "zero_point": quant["zero_point"]}


def test_adapter_has_exactly_the_models_operators_and_budgeted_arena(built_project):
    """The TFLM adapter's resolver and arena, the shell's camera (the budget's two PSRAM frames, CAMERA_GRAB_LATEST)
    and pins, and INFO's digest of the embedded model."""
    main = (built_project / FIRMWARE / "src/te_model_tflm.cc").read_text()
    app = (built_project / FIRMWARE / "src/te_app.h").read_text()
    calibration = calibration_of(built_project)
    methods = re.findall(r"resolver\.(Add\w+)\(\) != kTfLiteOk", main)
    assert sorted(methods) == sorted(resolver.builtin_methods()[op] for op in calibration["operators"])
    assert f"MicroMutableOpResolver<{len(methods)}>" in main
    budget = json.loads((built_project / "build/codegen/budget.json").read_text())
    model = (built_project / "build/quantize/model.tflite").read_bytes()
    scratch_bytes = scratch.arena_extra_bytes(model, "esp32")
    assert scratch_bytes == 48  # the softmax's 10 x 4 B, rounded to 16: the generic ESP32 convs need none
    expected_arena = -(-int(calibration["arena_bytes"] * 1.02 + scratch_bytes) // 16) * 16
    assert budget["arena"]["bytes"] == expected_arena < calibration["arena_bytes"] * 1.25
    assert budget["arena"]["extra_bytes"] == scratch_bytes and budget["arena"]["margin"] == 0.02
    assert budget["arena"]["frames"] == {"count": 2, "bytes": 2 * 320 * 240 * 2, "place": "psram"}
    assert f"kArenaSize = {expected_arena};" in main
    assert budget["arena"]["placement"] == "internal" and "kArenaCaps = MALLOC_CAP_INTERNAL" in main
    assert "heap_caps_aligned_alloc(16, kArenaSize, kArenaCaps)" in main and "arena_used_bytes()" in main
    assert "#define TE_CAM_FB_COUNT 2" in app and "CAMERA_GRAB_LATEST" in app and "CAMERA_FB_IN_PSRAM" in app
    labels = json.loads((built_project / "build/dataset/dataset.json").read_text())["classes"]
    assert "#define TE_LABELS { " + ", ".join(f'"{label}"' for label in labels) + " }" in app
    assert "#define TE_CAM_SDA 26" in app and "#define TE_CAM_PCLK 22" in app  # AI Thinker pin map
    assert "new tflite::MicroProfiler" not in main and "&timer);" in main   # per-operator cycles
    digest = json.loads((built_project / "build/codegen/project.json").read_text())["model_xxh3"]
    assert digest == xxhash.xxh3_64_hexdigest((built_project / "build/quantize/model.tflite").read_bytes())
    assert f'\\"model_xxh3\\":\\"{digest}\\"' in app and '\\"backend\\":\\"tflm\\"' in app


def test_resolver_data_is_the_pinned_header_list():
    """Every entry of resolver_ops.json names an Add method of the pinned component once; the ops codegen may
    emit all come from it, and DIV/SUM (absent from the 2022 Arduino library) map to this header's methods."""
    data = resolver.resolver_data()
    assert data["component"] == "espressif/esp-tflite-micro"
    assert data["version"] == codegen.COMPONENTS[data["component"]]["version"]
    methods = [entry["method"] for entry in data["methods"]]
    assert len(methods) == len(set(methods)) and all(m.startswith("Add") for m in methods)
    lines = [entry["line"] for entry in data["methods"]]
    assert lines == sorted(lines)  # in the header's order, as extracted
    assert set(data["esp_nn_ops"]) <= set(resolver.builtin_methods())
    assert resolver.builtin_methods()["FULLY_CONNECTED"] == "AddFullyConnected"


# ---- the firmware's preprocessing, compiled with the host gcc, against the Python preprocessing ----------

def _compile(src: Path, tmp_path: Path) -> Path:
    exe = tmp_path / "harness"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(src),
                    str(HERE / "firmware_harness.c"), str(src / "preprocess.c"), "-o", str(exe)], check=True)
    return exe


def _check_frames(exe: Path, tmp_path: Path, width: int, height: int, channels: int, quant: dict,
                  transform=preprocess.UNIT) -> int:
    table = preprocess.input_table(quant["scale"], quant["zero_point"], quant["dtype"], transform)
    checked = 0
    for index, rgb in enumerate(camera_frames()):
        frame = rgb565(rgb)
        (tmp_path / f"frame{index}").write_bytes(frame)
        h, w = rgb.shape[:2]
        got = subprocess.run([str(exe), str(tmp_path / f"frame{index}"), str(w), str(h)],
                             check=True, capture_output=True).stdout
        pixels = preprocess.resize(from_rgb565(frame, w, h), width, height, channels)
        expected = table[pixels].astype(quant["dtype"]).tobytes()
        assert got == expected, f"frame {index} ({w}x{h}) differs from the Python preprocessing"
        checked += 1
    return checked


def test_firmware_preprocessing_matches_python_byte_for_byte(built_project, tmp_path):
    """The example's generated src/preprocess.c (32x32 grayscale, int8) on camera frames."""
    exe = _compile(built_project / FIRMWARE / "src", tmp_path)
    assert _check_frames(exe, tmp_path, 32, 32, 1, calibration_of(built_project)["input"]) == 6


@pytest.mark.parametrize("width,height,channels,quant,transform", [
    (48, 40, 3, {"dtype": "int8", "scale": 0.0078125, "zero_point": -1}, "unit"),     # colour, crop the width
    (64, 16, 3, {"dtype": "int16", "scale": 0.00003, "zero_point": 0}, "unit"),       # int16x8, crop the height
    (48, 48, 3, {"dtype": "int8", "scale": 0.0078125, "zero_point": -1}, "symmetric"),  # a MobileNet's [-1, 1]
])
def test_preprocessing_other_inputs_match_python(tmp_path, width, height, channels, quant, transform):
    src = tmp_path / "src"
    src.mkdir()
    declared = preprocess.PRESETS[transform]
    for name, text in preprocess_c.sources(width, height, channels, quant, declared).items():
        (tmp_path / name).write_text(text)
    exe = _compile(src, tmp_path)
    assert _check_frames(exe, tmp_path, width, height, channels, quant, declared) == 6


# ---- incremental behaviour, boards, budget ---------------------------------------------------------------

def test_changing_board_reruns_only_codegen_and_build(project_copy, tmp_path):
    """Without PlatformIO on PATH the build stops with its message, after codegen regenerated the project."""
    write_manifest(project_copy, {"board": "xiao_esp32s3_sense"})
    result = doit(project_copy, "build", check=False, env={"PATH": "/usr/bin:/bin"})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert {"codegen", "build"} <= ran(result)
    assert not ran(result) & UPSTREAM
    assert "PlatformIO is not installed" in output and "pip install platformio" in output
    assert "Traceback" not in output
    budget = json.loads((project_copy / "build/codegen/budget.json").read_text())
    assert budget["board"] == "xiao_esp32s3_sense" and budget["flash"]["available_bytes"] == 3342336
    model = (project_copy / "build/quantize/model.tflite").read_bytes()
    assert budget["arena"]["extra_bytes"] == scratch.arena_extra_bytes(model, "esp32s3") > 48  # S3 conv scratch
    from platformio.project.config import ProjectConfig
    config = ProjectConfig(str(project_copy / FIRMWARE / "platformio.ini"))
    assert config.get("env:xiao_esp32s3_sense", "board") == "seeed_xiao_esp32s3"
    assert config.get("env:xiao_esp32s3_sense", "framework") == ["espidf"]
    values = _sdkconfig(project_copy / FIRMWARE / "sdkconfig.defaults", tmp_path)
    assert values["CONFIG_IDF_TARGET"] == "esp32s3"
    assert values["CONFIG_SPIRAM_MODE_OCT"] == values["CONFIG_ESPTOOLPY_FLASHMODE_QIO"] == "y"
    assert "CONFIG_ESPTOOLPY_FLASHMODE_DIO" not in values
    assert "GPIO_NUM_21" not in (project_copy / FIRMWARE / "src/te_app.h").read_text()  # no led_class set
    assert "#define TE_CAM_XCLK 10" in (project_copy / FIRMWARE / "src/te_app.h").read_text()


def test_unknown_board_lists_the_known_ones(project_copy):
    write_manifest(project_copy, {"board": "esp32cma"})
    result = doit(project_copy, "codegen", check=False)
    assert result.returncode != 0
    assert re.search(r"tinyedge\.yaml:\d+: board: no board file boards/esp32cma\.yaml; "
                     r"known boards: esp32cam, (qemu-cortex-m4, qemu-cortex-m7, )?xiao_esp32s3_sense", result.stderr)
    assert "Traceback" not in result.stdout + result.stderr


def _board_variant(project: Path, name: str, changes: dict) -> None:
    data = yaml.safe_load((project / "boards/esp32cam.yaml").read_text())
    for section, values in changes.items():
        data[section].update(values)
    (project / "boards" / f"{name}.yaml").write_text(yaml.safe_dump(data))


def test_budget_places_arena_in_psram_or_stops_at_codegen(project_copy):
    """Two boards added as YAML only: one with little internal RAM (arena goes to PSRAM), one whose app
    partition is too small (codegen stops with needed vs available)."""
    _board_variant(project_copy, "small_sram", {"sram": {"arena_max_bytes": 4096}})
    _board_variant(project_copy, "small_flash", {"flash": {"app_partition_bytes": 1048576 + 8192}})  # < model
    write_manifest(project_copy, {"board": "small_sram", "firmware": {"led_class": "3"}})
    result = doit(project_copy, "codegen")
    assert ran(result) == {"codegen"}
    main = (project_copy / FIRMWARE / "src/te_model_tflm.cc").read_text()
    app = (project_copy / FIRMWARE / "src/te_app.h").read_text()
    assert "#define TE_LED_CLASS 3" in app and "#define TE_LED_PIN GPIO_NUM_33" in app and "#define TE_LED_ON 0" in app
    assert "kArenaCaps = MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT;" in main and "in PSRAM" in main
    assert json.loads((project_copy / "build/codegen/budget.json").read_text())["arena"]["placement"] == "psram"
    checked = doit(project_copy, "-a", "-s", "check").stdout   # issue 24: the table and verdict in words
    internal = next(line for line in checked.splitlines() if "internal RAM" in line and "arena (" in line)
    assert internal.endswith("→ PSRAM") and "fits small_sram: arena in PSRAM (" in checked, checked

    write_manifest(project_copy, {"board": "small_flash"})
    result = doit(project_copy, "codegen", check=False)
    model = len((project_copy / "build/quantize/model.tflite").read_bytes())
    assert result.returncode != 0
    assert (f"it needs {model + 1048576} B (model {model} B + 1048576 B of runtime, estimate: ESP-IDF, camera "
            "driver, TFLM with ESP-NN, the shell), the app partition (partitions.csv) holds 1056768 B") \
        in result.stdout + result.stderr
    assert "compression.prune" in result.stdout + result.stderr


def test_operator_the_esp32_port_cannot_run_names_op_and_layer(built_project):
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    data = (built_project / "build/quantize/model.tflite").read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    for code in model.operatorCodes:
        if code.builtinCode == schema.BuiltinOperator.MAX_POOL_2D:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.UNIQUE
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    from tinyedge_tasks.tflite import model_file
    with pytest.raises(TinyedgeError, match=r"esp-tflite-micro 1\.3\.8 cannot run: UNIQUE \(layer '.*pool1.*'\), "
                                            r"UNIQUE \(layer '.*pool2"):
        resolver.resolver_ops(model_file.operators(bytes(builder.Output())))
    ops = resolver.resolver_ops(model_file.operators(data))
    assert [op["op"] for op in ops] == sorted(calibration_of(built_project)["operators"])


# ---- PlatformIO without network, flash and monitor without a board ----------------------------------------

def test_build_offline_says_to_connect_once(project_copy, tmp_path):
    """Real `pio run` with an empty PlatformIO home and a dead proxy, so it is offline on any machine: it cannot
    download the espressif32 platform (about a minute of retries)."""
    dead = "http://127.0.0.1:9"
    offline = {"PLATFORMIO_CORE_DIR": str(tmp_path / "pio-home"), "HTTP_PROXY": dead, "HTTPS_PROXY": dead,
               "http_proxy": dead, "https_proxy": dead, "NO_PROXY": "", "no_proxy": ""}
    result = doit(project_copy, "build", check=False, env=offline)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and ran(result) == {"build"}
    assert "PlatformIO could not download the ESP32 platform" in output
    assert "Connect to the network once" in output and f"pio run` in {project_copy / FIRMWARE}" in output
    assert "Traceback" not in output
    assert not (project_copy / "build/build/build.json").exists()


def test_flash_without_a_board_on_the_port(project_copy):
    result = doit(project_copy, "flash", "--port", "/dev/ttyTINYEDGE404", check=False)
    assert result.returncode != 0
    assert "no board on serial port /dev/ttyTINYEDGE404" in result.stdout + result.stderr
    result = doit(project_copy, "flash", check=False, env={"TINYEDGE_PORT": "/dev/ttyTINYEDGE405"})
    assert "no board on serial port /dev/ttyTINYEDGE405" in result.stdout + result.stderr
    write_manifest(project_copy, {"firmware": {"port": "/dev/ttyTINYEDGE406"}})
    result = doit(project_copy, "flash", check=False)
    assert "no board on serial port /dev/ttyTINYEDGE406" in result.stdout + result.stderr
    assert not ran(result) & UPSTREAM  # firmware.port is not part of any stage's fingerprint
    assert "Traceback" not in result.stdout + result.stderr


def test_monitor_reads_the_board(project_copy):
    """The one mock: a pseudo-terminal stands for the board's serial port and prints what the firmware prints.
    `pio device monitor` needs a terminal, so doit runs on a second pseudo-terminal."""
    board_side, port_side = os.openpty()
    term_reader, term = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "doit", "monitor", "--port", os.ttyname(port_side)],
                               cwd=project_copy, stdin=term, stdout=term, stderr=term, start_new_session=True)
    os.close(term)
    seen, sent, deadline = b"", False, time.monotonic() + 60
    try:
        while time.monotonic() < deadline and b"0.996" not in seen:
            if select.select([term_reader], [], [], 0.5)[0]:
                seen += os.read(term_reader, 4096)
            if not sent and b"Quit" in seen:
                os.write(board_side, b"3127 us | 3 0.996 8 0.004 5 0.000\r\n")
                sent = True
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        for fd in (board_side, port_side, term_reader):
            os.close(fd)
    text = seen.decode(errors="replace")
    assert "at 115200 baud" in text and "115200 8-N-1" in text
    assert "3127 us | 3 0.996" in text


def test_board_files_load_and_pio_is_found():
    from tinyedge_tasks.config import boards
    from tinyedge_tasks.toolchains.platformio import pio_executable
    loaded = {name: boards.load(REPO / "boards" / f"{name}.yaml") for name in boards.known(REPO)}
    assert {"esp32cam", "xiao_esp32s3_sense"} <= set(loaded)
    assert loaded["esp32cam"].psram.bytes == 4 * 1024 * 1024 and loaded["esp32cam"].flash.bytes == 4 * 1024 * 1024
    assert loaded["xiao_esp32s3_sense"].chip == "esp32s3"
    assert Path(pio_executable()).name in ("pio", "platformio") and shutil.which("gcc")


def test_board_sdkconfig_takes_plain_values_and_reasons():
    """{value, why} and plain values both load as {KEY: value} (what the ESP-DL backend reads); the shared
    ESP-IDF skeleton refuses a line without a reason, naming it."""
    from tinyedge_tasks.config import boards
    from tinyedge_tasks.config.board_schema import Board
    data = yaml.safe_load((REPO / "boards/esp32cam.yaml").read_text())
    board = Board.model_validate(data)
    assert board.esp_idf.sdkconfig["CONFIG_SPIRAM"] is True and "PSRAM" in board.esp_idf.reasons["CONFIG_SPIRAM"]
    assert board.frame_buffers == 2
    data["esp_idf"]["sdkconfig"]["CONFIG_FREERTOS_HZ"] = 1000
    plain = Board.model_validate(data)
    assert plain.esp_idf.sdkconfig["CONFIG_FREERTOS_HZ"] == 1000 and "CONFIG_FREERTOS_HZ" not in plain.esp_idf.reasons
    with pytest.raises(TinyedgeError, match=r"boards/x\.yaml: esp_idf\.sdkconfig: CONFIG_FREERTOS_HZ without a reason"):
        esp_idf.skeleton(plain.named("x"), "p", {}, ">=5.1", [])
    assert boards.load(REPO / "boards/esp32cam.yaml").esp_idf.sdkconfig == board.esp_idf.sdkconfig
