"""The schema of a board file (pydantic), imported only when a board is loaded: listing tasks stays fast."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Runtime(_Strict):
    """What one backend's application takes in flash without the model, and where the figure comes from."""
    bytes: int = Field(ge=0)
    source: str = Field(min_length=1, description="measured (which build) or estimate (of what)")


class Flash(_Strict):
    bytes: int = Field(gt=0)
    partitions: str
    app_partition_bytes: int = Field(gt=0)
    runtime: dict[str, Runtime] = Field(description="Per firmware backend: the application without the model.")

    @model_validator(mode="before")
    @classmethod
    def _old_runtime_bytes(cls, data):
        """The single figure of older board files was TFLM's: say what replaced it."""
        if isinstance(data, dict) and "runtime_bytes" in data:
            raise ValueError("runtime_bytes is now runtime: {<backend>: {bytes: N, source: ...}}, one entry per "
                             "firmware backend (the old figure was TFLM's: runtime: {tflm: {bytes: "
                             f"{data['runtime_bytes']}, source: estimate}}}})")
        return data


class Sram(_Strict):
    bytes: int = Field(gt=0)
    arena_max_bytes: int = Field(ge=0, description="Largest arena that fits in internal RAM.")


class Psram(_Strict):
    bytes: int = Field(gt=0)
    reserved_bytes: int = Field(0, ge=0)


class PlatformIO(_Strict):
    """Toolchain section: the project is built by PlatformIO (`pio run`)."""
    platform: str = Field(description="pin it exactly (espressif32@6.9.0): the release fixes the ESP-IDF version")
    board: str
    framework: Literal["arduino", "espidf"]
    build_flags: list[str] = []
    lib_deps: list[str] = []
    options: dict[str, str | int | float] = {}


class EspIdf(_Strict):
    """Toolchain section: an ESP-IDF project (`idf.py build`, or PlatformIO with framework = espidf).

    Each sdkconfig entry is written `KEY: {value: ..., why: ...}` (the reason goes above its line in
    sdkconfig.defaults) or as a plain value; either way `sdkconfig` holds {KEY: value} once loaded and `reasons`
    {KEY: why} for the entries that gave one."""
    target: str = Field(description="IDF_TARGET: esp32, esp32s3, ...")
    sdkconfig: dict[str, str | int | bool] = Field({}, description="Board lines of sdkconfig.defaults.")
    reasons: dict[str, str] = Field({}, description="Why each sdkconfig line is there (from {value, why}).")

    @model_validator(mode="before")
    @classmethod
    def _split_reasons(cls, data):
        if not isinstance(data, dict) or not isinstance(data.get("sdkconfig"), dict):
            return data
        values, reasons = {}, dict(data.get("reasons") or {})
        for key, entry in data["sdkconfig"].items():
            if isinstance(entry, dict):
                if set(entry) != {"value", "why"} or not str(entry["why"]).strip():
                    raise ValueError(f"sdkconfig.{key}: expected {{value: ..., why: ...}} or a plain value, "
                                     f"found keys {', '.join(map(str, entry))}")
                values[key], reasons[key] = entry["value"], entry["why"]
            else:
                values[key] = entry
        return {**data, "sdkconfig": values, "reasons": reasons}


class Qemu(_Strict):
    """Toolchain section: an emulated board, `qemu-system-arm -M <machine> -cpu <cpu>`."""
    machine: str
    cpu: str


class MicroPython(_Strict):
    """Toolchain section: MicroPython firmware on the board; mpy-cross compiles, mpremote copies and runs."""
    firmware: str = Field(description="The MicroPython build the board needs (with the camera module).")
    march: str = Field(description="mpy-cross -march: xtensawin (ESP32, ESP32-S3), rv32imc, armv7emsp, ...")
    filesystem_bytes: int = Field(gt=0, description="The firmware's flash filesystem (room for .mpy files).")
    heap_bytes: int = Field(gt=0, description="MicroPython heap (PSRAM when the firmware enables it).")


class Frame(_Strict):
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    framesize: str


class Pins(_Strict):
    """GPIO numbers of the camera connector; -1 = not connected."""
    pwdn: int
    reset: int
    xclk: int
    sda: int
    scl: int
    d7: int
    d6: int
    d5: int
    d4: int
    d3: int
    d2: int
    d1: int
    d0: int
    vsync: int
    href: int
    pclk: int


class Camera(_Strict):
    sensor: str
    xclk_hz: int = Field(gt=0)
    frame: Frame
    pins: Pins


class Led(_Strict):
    pin: int
    active_low: bool = False


class Board(_Strict):
    name: str
    chip: str
    cpu_mhz: int = Field(gt=0)
    flash: Flash
    sram: Sram
    psram: Optional[Psram] = None
    camera: Optional[Camera] = None
    leds: dict[str, Led] = {}
    serial_speed: int = Field(115200, gt=0)
    # Toolchain sections: a backend builds with the first of its toolchains the board has a section for.
    platformio: Optional[PlatformIO] = None
    esp_idf: Optional[EspIdf] = None
    qemu: Optional[Qemu] = None
    micropython: Optional[MicroPython] = None
    _id: str = PrivateAttr("")   # the file's stem, the manifest's `board`: not a key of the file itself

    @property
    def id(self) -> str:
        """The board as the manifest names it: boards/<id>.yaml."""
        return self._id

    def named(self, board_id: str) -> "Board":
        """This board as the file boards/<board_id>.yaml (boards.load names every board it loads)."""
        board = self.model_copy()
        board._id = board_id
        return board

    @property
    def frame_bytes(self) -> int:
        """One RGB565 frame, as the firmware captures it (none without a camera)."""
        return self.camera.frame.width * self.camera.frame.height * 2 if self.camera else 0

    @property
    def frame_buffers(self) -> int:
        """Frames the camera driver allocates: two in PSRAM (CAMERA_GRAB_LATEST: the newest frame while the next
        fills), one in internal RAM without PSRAM; none without a camera."""
        if self.camera is None:
            return 0
        return 2 if self.psram else 1
