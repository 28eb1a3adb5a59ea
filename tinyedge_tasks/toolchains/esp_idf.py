"""The ESP-IDF project of every backend that builds one (TFLM, ESP-DL, C): the files around the model, once.

`skeleton(...)` renders platformio.ini (framework = espidf), the top-level CMakeLists.txt, sdkconfig.defaults
(the board's esp_idf lines, then the firmware's, each with its reason), partitions.csv (one factory app of the
board's flash.app_partition_bytes) and src/idf_component.yml (exact pins). `application(...)` adds the application
component src/: the shell (esp_idf_shell/te_shell.c: app_main, the camera of the board file with the budget's
frame buffers, the status LED, the console link, the timing and the validation protocol of
tinyedge_tasks/firmware/te_protocol.c), te_app.h (this board's and this model's constants, INFO of the protocol)
and src/CMakeLists.txt, around the backend's Adapter: its model adapter (te_model.h) and its own components.
`idf.py build` builds the folder as it is; `doit build` goes through PlatformIO, so the project index names the
`platformio` adapter (TOOLCHAIN). Knows no model format: the backend hands over shapes, quantization and bytes.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..native.csource import environment
from ..errors import TinyedgeError

TEMPLATES = Path(__file__).resolve().parent / "esp_idf_templates"
SHELL = Path(__file__).resolve().parent / "esp_idf_shell"                      # te_shell.c, te_model.h
PROTOCOL = Path(__file__).resolve().parents[1] / "firmware"                    # te_protocol.c/.h, shared C
SHELL_FILES = {"src/te_shell.c": SHELL / "te_shell.c", "src/te_model.h": SHELL / "te_model.h",
               "src/te_protocol.c": PROTOCOL / "te_protocol.c", "src/te_protocol.h": PROTOCOL / "te_protocol.h"}
SHELL_SOURCES = ("te_shell.c", "te_protocol.c", "preprocess.c")
# The shell's own managed components, pinned exactly. esp_jpeg is esp32-camera 2.1.5's own dependency (^1.3.1),
# pinned to that floor so the lock cannot drift.
CAMERA_COMPONENTS = {
    "espressif/esp32-camera": {"version": "2.1.5", "why": "OV2640 driver: camera_config_t with fb_location, grab_mode"},
    "espressif/esp_jpeg": {"version": "1.3.1", "why": "esp32-camera 2.1.5 requires ^1.3.1: pinned to that release"},
}
SHELL_IDF_VERSION = ">=5.1"   # esp32-camera 2.1.5 needs ESP-IDF 5.1
CYCLE_COUNTER = "ccount"      # esp_cpu_get_cycle_count(): the Xtensa CCOUNT register, CPU clock cycles
TOOLCHAIN = "platformio"   # the adapter `doit build` / `flash` / `monitor` use for these projects
APP_OFFSET = 0x10000       # the factory app after the bootloader, partition table, nvs and phy_init
APP_ALIGN = 0x10000        # app partitions start and end on 64 KB boundaries (flash MMU pages)
FILES = {"platformio.ini": "platformio.ini", "CMakeLists.txt": "CMakeLists.txt",
         "sdkconfig.defaults": "sdkconfig.defaults", "partitions.csv": "partitions.csv",
         "src/idf_component.yml": "idf_component.yml"}


@dataclass(frozen=True)
class Setting:
    """One sdkconfig.defaults line the backend adds, and the reason written above it."""
    key: str
    value: bool | int | str
    why: str


def kconfig_line(key: str, value: bool | int | str) -> str:
    """A setting as sdkconfig files write it: KEY=y, '# KEY is not set', bare integers, quoted strings."""
    if value is True:
        return f"{key}=y"
    if value is False:
        return f"# {key} is not set"
    if isinstance(value, int):
        return f"{key}={value}"
    return f'{key}="{value}"'


def _board_lines(board) -> list[dict]:
    missing = [key for key in board.esp_idf.sdkconfig if key not in board.esp_idf.reasons]
    if missing:
        raise TinyedgeError(f"boards/{board.id}.yaml: esp_idf.sdkconfig: {', '.join(missing)} without a reason; "
                            "sdkconfig.defaults states one for every line: write each as {value: ..., why: ...} "
                            "(compare with boards/esp32cam.yaml)")
    return [{"text": kconfig_line(key, value), "why": board.esp_idf.reasons[key]}
            for key, value in board.esp_idf.sdkconfig.items()]


def skeleton(board, project: str, components: dict[str, dict], idf_version: str,
             settings: list[Setting]) -> dict[str, str]:
    """{relative path: text} of the shared files. `components`: {registry name: {version, why}} pinned exactly;
    `settings`: the backend's sdkconfig.defaults lines, after the board's (a key the board sets too is refused)."""
    for section in ("platformio", "esp_idf"):
        if getattr(board, section, None) is None:
            raise TinyedgeError(f"boards/{board.id}.yaml: no {section} section; an ESP-IDF project needs "
                                "platformio (platform, board) and esp_idf (target, sdkconfig): compare with "
                                "boards/esp32cam.yaml")
    if board.esp_idf.target != board.chip:
        raise TinyedgeError(f"boards/{board.id}.yaml: esp_idf.target is {board.esp_idf.target} but chip is "
                            f"{board.chip}; make them the same")
    size = board.flash.app_partition_bytes
    if size % APP_ALIGN or APP_OFFSET + size > board.flash.bytes:
        raise TinyedgeError(f"boards/{board.id}.yaml: flash.app_partition_bytes is {size}; the factory app "
                            f"starts at {APP_OFFSET:#x} and needs a multiple of {APP_ALIGN} B that ends within "
                            f"flash.bytes ({board.flash.bytes}): at most {(board.flash.bytes - APP_OFFSET)} B")
    clash = sorted({s.key for s in settings} & set(board.esp_idf.sdkconfig))
    if clash:
        raise TinyedgeError(f"boards/{board.id}.yaml: esp_idf.sdkconfig sets {', '.join(clash)}, which the "
                            "firmware sets itself: remove it from the board file")
    env = environment(TEMPLATES)
    env.filters["cmake_name"] = lambda text: re.sub(r"[^A-Za-z0-9_-]", "_", text)
    values = {"board": board, "board_name": board.id, "project": project, "components": components,
              "idf_version": idf_version, "app_offset": APP_OFFSET, "board_lines": _board_lines(board),
              "firmware_lines": [{"text": kconfig_line(s.key, s.value), "why": s.why} for s in settings]}
    return {path: env.get_template(f"{template}.j2").render(values) for path, template in FILES.items()}


SHELL_SETTINGS = [Setting("CONFIG_COMPILER_OPTIMIZATION_PERF", True,
                          "-O2: the model's kernels are compute-bound; the default -Og debug level is several times "
                          "slower")]


@dataclass(frozen=True)
class Adapter:
    """What a backend hands the shell: its model adapter and the facts the shell and INFO need.

    `files`: the backend's files under src/ (the adapter implementing te_model.h, the model, its runtime glue);
    `sources`: which of them src/CMakeLists.txt compiles; `requires`: ESP-IDF components they use; `components`:
    its managed components {name: {version, why}}, pinned exactly; `settings`: its sdkconfig.defaults lines;
    `input` / `output`: {dtype, shape, scale, zero_point} as calibrate recorded them; `model`: the bytes of the
    model file the firmware embeds (INFO's model_xxh3); `cmake`: lines after idf_component_register."""
    backend: str
    files: dict[str, str | bytes]
    sources: tuple[str, ...]
    input: dict
    output: dict
    model: bytes
    arena_bytes: int
    components: dict[str, dict] = field(default_factory=dict)
    settings: tuple[Setting, ...] = ()
    requires: tuple[str, ...] = ()
    idf_version: str = SHELL_IDF_VERSION
    cmake: str = ""


def model_digest(model: bytes) -> str:
    """The model's digest as the validation protocol states it (INFO model_xxh3, project.json)."""
    import xxhash
    return xxhash.xxh3_64_hexdigest(model)


def _tensor(tensor: dict) -> dict:
    from ..native.csource import ctype
    count = 1
    for size in tensor["shape"]:
        count *= int(size)
    width = {"int8": 1, "uint8": 1, "int16": 2, "float32": 4}[tensor["dtype"]]
    # a float output (ESP-DL leaves a float last layer so) is printed as it is: scale 1, zero point 0
    c_type = "float" if tensor["dtype"] == "float32" else ctype(tensor["dtype"], "output")
    return {"shape": [int(s) for s in tensor["shape"]], "dtype": tensor["dtype"], "scale": float(tensor["scale"]),
            "zero_point": int(tensor["zero_point"]), "bytes": count * width, "count": count, "ctype": c_type}


def info(board, adapter: Adapter) -> dict:
    """INFO's constant fields, as codegen writes them into te_app.h (the shell adds arena_used and layers)."""
    keys = ("shape", "dtype", "scale", "zero_point", "bytes")
    clock = board.cpu_mhz * 1_000_000
    tensors = {side: _tensor(getattr(adapter, side)) for side in ("input", "output")}
    return {"protocol": 1, "model_xxh3": model_digest(adapter.model), "backend": adapter.backend,
            "board": board.id, "clock_hz": clock, "cycle_counter": CYCLE_COUNTER, "cycles_per_second": clock,
            **{side: {k: tensor[k] for k in keys} for side, tensor in tensors.items()},
            "arena_bytes": adapter.arena_bytes}


def frame_buffers(budget) -> dict:
    """The camera's frame buffers as the budget counted them, and the grab mode that works with that many:
    esp32-camera 2.1.5 acts on CAMERA_GRAB_LATEST only with two buffers or more (cam_hal.c)."""
    frames = budget.arena["frames"]
    location = "CAMERA_FB_IN_PSRAM" if frames["place"] == "psram" else "CAMERA_FB_IN_DRAM"
    if frames["count"] >= 2:
        return {"count": frames["count"], "location": location, "grab_mode": "CAMERA_GRAB_LATEST",
                "why": f"{frames['count']} frames in {frames['place']}, as the budget counts them; always the newest: "
                       "the driver fills one while the loop preprocesses another"}
    return {"count": frames["count"], "location": location, "grab_mode": "CAMERA_GRAB_WHEN_EMPTY",
            "why": f"one frame in {frames['place']}, as the budget counts it: filled only when returned, so the first "
                   "frame after a pause is stale (CAMERA_GRAB_LATEST needs two)"}


def application(board, project: str, adapter: Adapter, budget, labels: list[str],
                led: dict) -> dict[str, str | bytes]:
    """Every file of the ESP-IDF project: the skeleton, the shell, te_app.h and src/CMakeLists.txt around the
    backend's adapter. `led`: backends.status_led's values; `budget`: the Budget codegen wrote."""
    output = _tensor(adapter.output)
    if output["count"] != len(labels):
        raise TinyedgeError(f"the model has {output['count']} outputs and the data set {len(labels)} classes; the "
                            "firmware prints one score per class: the last layer must have one unit per class")
    components = {**CAMERA_COMPONENTS, **adapter.components}
    files = skeleton(board, project, components, adapter.idf_version,
                     SHELL_SETTINGS + list(adapter.settings))
    files.update({name: path.read_text() for name, path in SHELL_FILES.items()})
    env = environment(TEMPLATES)
    values = {"board": board, "board_name": board.id, "project": project, "backend": adapter.backend,
              "pins": board.camera.pins.model_dump(), "frames": frame_buffers(budget), **led, "labels": labels,
              "output": output, "info_json": json.dumps(info(board, adapter), separators=(",", ":"))[:-1],
              "sources": SHELL_SOURCES + adapter.sources, "requires": ("driver",) + adapter.requires,
              "cmake": adapter.cmake}
    files["src/te_app.h"] = env.get_template("te_app.h.j2").render(values)
    files["src/CMakeLists.txt"] = env.get_template("src_CMakeLists.txt.j2").render(values)
    files.update(adapter.files)
    return files
