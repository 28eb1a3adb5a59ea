"""The model-agnostic part of an ESP-IDF project, shared by the backends that build one (TFLM, ESP-DL, ...).

`skeleton(...)` renders platformio.ini (framework = espidf), the top-level CMakeLists.txt, sdkconfig.defaults
(the board's esp_idf lines, then the backend's, each with its reason), partitions.csv (one factory app of the
board's flash.app_partition_bytes) and src/idf_component.yml (exact pins) from the board and the backend's list
of managed components. The backend adds src/CMakeLists.txt and its sources. `idf.py build` builds the folder as
it is; `doit build` goes through PlatformIO, so the project index names the `platformio` adapter (TOOLCHAIN).
Knows no model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..native.csource import environment
from ..errors import TinyedgeError

TEMPLATES = Path(__file__).resolve().parent / "esp_idf_templates"
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
