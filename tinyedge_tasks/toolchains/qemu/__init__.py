"""The `qemu` toolchain: a generated C project (<folder>/src/*.c with model.h) compiled with Debian's
arm-none-eabi-gcc for an emulated Cortex-M (QEMU mps2-an386 Cortex-M4 by default, or mps2-an500 Cortex-M7: the same
memory map, start-up code and linker script; newlib rdimon semihosting) and run there: N samples through host
files, instructions counted, code and data bytes measured. Knows no model. <folder>/qemu.json, when present, names
the project's machine and cpu.

Adapter: build(folder, state, binary) compiles and records sizes (the "binary" is the ELF image QEMU's -kernel
loads), upload(folder, state, port) runs the firmware on the project's samples.bin (no port: the board is
emulated), monitor() says there is no serial line. The build record maps arm-none-eabi-size onto flash and RAM:
flash used = text + data (code, weights, initial values), RAM used = data + bss (static: arena, buffers; the stack
and heap come on top), available = the linker script's regions (CODE and RAM, 4 MiB each).

Instruction counts: QEMU emulates no DWT cycle counter, but its SysTick runs on the 25 MHz core clock, and with
`-icount shift=0` the virtual clock advances exactly 1 ns per executed instruction: one tick is 40
instructions, deterministic from run to run (tests/backends/c/test_c_backend.py checks both).

Serial shell: a project with src/model_info.h (the INFO JSON codegen writes) is built with serve.c and the shared
protocol code (tinyedge_tasks/firmware/te_protocol.c); started without semihosting arguments, the firmware speaks
the validation protocol on UART0, which emulate() puts on a loopback TCP socket for `doit validate`."""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import TinyedgeError
from ..process import require, run_tool

if TYPE_CHECKING:   # NumPy is imported where it is used: a no-op `doit` imports this module
    import numpy as np

HERE = Path(__file__).parent
PROTOCOL = HERE.parent.parent / "firmware"   # te_protocol.c/.h, shared with the ESP-IDF shell
INFO_HEADER = "model_info.h"               # #define TINYEDGE_INFO "<the INFO JSON>", written by codegen
MACHINE, CPU = "mps2-an386", "cortex-m4"   # the default target
# machine -> cpu: what startup.c, harness.c and mps2-an386.ld run on (code RAM at 0x0, data RAM at 0x20000000)
TARGETS = {"mps2-an386": "cortex-m4", "mps2-an500": "cortex-m7"}
TARGET_FILE = "qemu.json"                  # {"machine": ..., "cpu": ...} in a project folder


def _cflags(cpu: str) -> list[str]:
    return ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft",
            "--specs=rdimon.specs", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections"]


def _qemu(machine: str, cpu: str, icount: str = "shift=0") -> list[str]:
    return ["qemu-system-arm", "-M", machine, "-cpu", cpu, "-nodefaults", "-display", "none", "-icount", icount]


def target(folder: Path) -> tuple[str, str]:
    """(machine, cpu) of a project folder: its qemu.json, else the default."""
    path = Path(folder) / TARGET_FILE
    if not path.is_file():
        return MACHINE, CPU
    found = json.loads(path.read_text())
    return found["machine"], found["cpu"]


INSTRUCTIONS_PER_TICK = 40   # 1 ns per instruction (icount shift=0) at a 25 MHz SysTick clock
REGION_BYTES = 4 * 1024 * 1024             # CODE and RAM lengths in mps2-an386.ld
NEEDS_PORT = False                         # `doit flash` and `monitor` ask for no serial port
EMULATOR = "the emulated board {board} (qemu-system-arm, UART on a loopback socket)"   # what emulate() starts
SAMPLES, LABELS = "samples.bin", "samples.txt"   # what upload runs: int8 inputs and one label per line


@dataclass
class QemuRun:
    outputs: np.ndarray                 # int8 (N, output bytes)
    instructions_per_inference: float   # mean over the N samples, +-40 per sample
    layer_instructions: list[float]     # per operator, mean over the samples (a model with TINYEDGE_LAYERS)


def build(folder: Path, state: Path, binary: Path) -> dict:
    """Compile <folder>/src for its Cortex-M; copy the ELF to `binary`; the build record's values."""
    machine, cpu = target(folder)
    elf = compile_firmware(Path(folder) / "src", Path(state) / "qemu" / "build", cpu)
    shutil.copyfile(elf, binary)
    size = sizes(elf)
    return {"env": f"{machine} {cpu}", "flash_used_bytes": size["text"] + size["data"],
            "flash_available_bytes": REGION_BYTES, "ram_used_bytes": size["data"] + size["bss"],
            "ram_available_bytes": REGION_BYTES}


def upload(folder: Path, state: Path, port: str) -> None:
    """`doit flash` on an emulated board: build, then run the firmware in QEMU on the project's samples and
    print each sample's top output index (and label) and the instructions per inference."""
    import numpy as np
    folder = Path(folder)
    labels = (folder / LABELS).read_text().split("\n")
    data = np.frombuffer((folder / SAMPLES).read_bytes(), dtype=np.int8).reshape(len(labels), -1)
    machine, cpu = target(folder)
    elf = compile_firmware(folder / "src", Path(state) / "qemu" / "flash", cpu)
    print(f"  running {elf.name} in qemu-system-arm -M {machine} -cpu {cpu} on {len(labels)} samples", flush=True)
    result = run(elf, data, machine=machine, cpu=cpu)
    for index, (output, label) in enumerate(zip(result.outputs, labels, strict=True)):
        print(f"  sample {index}: top output {int(np.argmax(output))} (score {int(output.max())}), "
              f"label {label}", flush=True)
    print(f"  {result.instructions_per_inference:.0f} instructions per inference (QEMU -icount)", flush=True)


def monitor(port: str, speed: int) -> None:
    raise TinyedgeError("the QEMU board is emulated: it has no serial port to monitor; `doit flash` runs "
                        "the firmware in QEMU and prints its output")


def compile_firmware(src_dir: Path, out_dir: Path, cpu: str = CPU, timeout: float = 180) -> Path:
    """Every .c file of src_dir + the harness, startup and linker script -> out_dir/model.elf for the cpu."""
    require("arm-none-eabi-gcc")
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = run_tool(["arm-none-eabi-gcc", "-print-file-name=rdimon.specs"], "looking for newlib", 30).strip()
    if not Path(specs).is_file():
        raise TinyedgeError("arm-none-eabi-gcc: newlib's rdimon.specs not found; install it with: "
                            "sudo apt-get install libnewlib-arm-none-eabi")
    elf = out_dir / "model.elf"
    sources = sorted(str(p) for p in src_dir.glob("*.c"))
    hook = ["-DTINYEDGE_LAYER_HOOK"] if "TINYEDGE_LAYERS" in (src_dir / "model.h").read_text() else []
    serial = [] if not (src_dir / INFO_HEADER).is_file() else [
        "-DTE_SERIAL", f"-DTE_CYCLES_PER_TICK={INSTRUCTIONS_PER_TICK}", "-I", str(PROTOCOL),
        str(HERE / "serve.c"), str(PROTOCOL / "te_protocol.c")]
    run_tool(["arm-none-eabi-gcc", *_cflags(cpu), "-DTE_SYSTICK", *hook, "-T", str(HERE / "mps2-an386.ld"),
              "-I", str(src_dir), "-I", str(HERE), *sources, str(HERE / "harness.c"), str(HERE / "startup.c"),
              *serial, "-o", str(elf)],
             f"compiling {src_dir} for the {cpu}", timeout)
    return elf


def run(elf: Path, inputs: np.ndarray, timeout: float = 300, machine: str = MACHINE, cpu: str = CPU) -> QemuRun:
    """Run the firmware on every int8 input sample (N, ...) in QEMU; the outputs and instructions per inference.
    Semihosting passes arguments comma-separated: the files live in a fresh folder with plain names."""
    import numpy as np
    inputs = np.ascontiguousarray(inputs, dtype=np.int8).reshape(len(inputs), -1)
    with tempfile.TemporaryDirectory(prefix="tinyedge-qemu-") as work:
        (Path(work) / "in.bin").write_bytes(inputs.tobytes())
        semihosting = f"enable=on,target=native,arg=harness,arg=in.bin,arg=out.bin,arg={len(inputs)}"
        line = run_tool([*_qemu(machine, cpu), "-kernel", str(Path(elf).resolve()), "-semihosting-config", semihosting],
                        f"running {elf} in QEMU", timeout, cwd=Path(work))
        found = re.search(r"(\d+) samples, (\d+) systick ticks", line)
        if found is None:
            raise TinyedgeError(f"running {elf} in QEMU: no summary line from the harness; it printed:\n{line}")
        outputs = np.frombuffer((Path(work) / "out.bin").read_bytes(), dtype=np.int8).reshape(len(inputs), -1)
    layers = [int(ticks) * INSTRUCTIONS_PER_TICK / len(inputs)
              for ticks in re.findall(r"layer \d+, (\d+) systick ticks", line)]
    return QemuRun(outputs, int(found.group(2)) * INSTRUCTIONS_PER_TICK / len(inputs), layers)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int, qemu: subprocess.Popen, timeout: float) -> None:
    """Wait until QEMU accepts on `port`; its own error when it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if qemu.poll() is not None:
            raise TinyedgeError(f"qemu-system-arm ended before its UART socket opened: "
                                f"{qemu.stderr.read().decode(errors='replace').strip()[-300:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise TinyedgeError(f"qemu-system-arm did not open its UART socket 127.0.0.1:{port} in {timeout:g} s")


@contextlib.contextmanager
def emulate(folder: Path, state: Path, timeout: float = 30):
    """The project's firmware built with its serial shell and running in QEMU, UART0 on a loopback socket:
    yields the pyserial URL (socket://127.0.0.1:PORT); QEMU is ended on leaving (Ctrl-C included)."""
    require("qemu-system-arm")
    folder = Path(folder)
    if not (folder / "src" / INFO_HEADER).is_file():
        raise TinyedgeError(f"{folder / 'src' / INFO_HEADER} is missing: the project was generated before the "
                            "serial shell existed; run `doit codegen` again")
    machine, cpu = target(folder)
    elf = compile_firmware(folder / "src", Path(state) / "qemu" / "serve", cpu)
    port = _free_port()
    chardev = f"socket,id=uart0,host=127.0.0.1,port={port},server=on,wait=off"
    # sleep=off: while the core waits for a byte (WFI), virtual time jumps instead of following the wall clock
    command = [*_qemu(machine, cpu, "shift=0,sleep=off"), "-kernel", str(elf.resolve()),
               "-semihosting-config", "enable=on,target=native", "-chardev", chardev, "-serial", "chardev:uart0"]
    qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _listening(port, qemu, timeout)
        yield f"socket://127.0.0.1:{port}"
    finally:
        qemu.kill()
        qemu.wait()
        qemu.stderr.close()


def object_sizes(src_dir: Path, out_dir: Path, timeout: float = 180, cpu: str = CPU) -> dict[str, dict[str, int]]:
    """Each .c of src_dir compiled alone for the Cortex-M4 -> {object name: arm-none-eabi-size of it}: the model's
    own bytes, without the harness and newlib that the firmware links in."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = {}
    for source in sorted(src_dir.glob("*.c")):
        obj = out_dir / f"{source.stem}.o"
        run_tool(["arm-none-eabi-gcc", *_cflags(cpu), "-I", str(src_dir), "-c", str(source), "-o", str(obj)],
                 f"compiling {source} for the {cpu}", timeout)
        found[obj.name] = sizes(obj)
    return found


def sizes(elf: Path) -> dict[str, int]:
    """arm-none-eabi-size (Berkeley): text (code + constants such as weights), data, bss (arena, buffers)."""
    line = run_tool(["arm-none-eabi-size", str(elf)], f"measuring {elf}", 30).splitlines()[-1].split()
    return {"text": int(line[0]), "data": int(line[1]), "bss": int(line[2])}


def symbol_bytes(elf: Path, pattern: str) -> int:
    """Total bytes of the symbols whose whole name matches the regular expression (e.g. the weight arrays)."""
    table = run_tool(["arm-none-eabi-nm", "-S", str(elf)], f"reading symbols of {elf}", 30)
    return sum(int(row[1], 16) for row in (line.split() for line in table.splitlines())
               if len(row) == 4 and re.fullmatch(pattern, row[3]))
