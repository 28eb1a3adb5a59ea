"""The MicroPython backend (firmware.backend: micropython): the generated package run in two real MicroPython
ports (the unix port from PyPI with viper, the WebAssembly port under Node) gives TFLM's outputs byte for byte;
mpy-cross compiles every module for the ESP32; a real doit run, and switching back to tflm restores the cache."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, REPO, doit, ran, write_manifest

from tinyedge_tasks.backends.micropython import generate, unix
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.preprocess import UNIT
from tinyedge_tasks.tflite import model_file
from tinyedge_tasks.tflite import runtime as tflm
from tinyedge_tasks.toolchains import mpremote

ZOO = FIXTURES / "zoo"
WASM = REPO / "tests" / ".npm" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"


def package(name: str) -> tuple[dict[str, str], bytes]:
    model = (ZOO / f"{name}_int8_none.tflite").read_bytes()
    files, _ = generate.model_files(model)
    quant, _ = model_file.io_details(model_file.interpreter(model))
    _, height, width, channels = quant["shape"]
    files["te_preprocess.py"] = generate.preprocess_source(width, height, channels, quant, UNIT)
    files["te_info.py"] = generate.info_source({"model": name})
    return files, model


def samples() -> np.ndarray:
    with np.load(ZOO / "data.npz") as data:
        return data["x_test"]


def tflm_outputs(model: bytes, images: np.ndarray) -> np.ndarray:
    scores = tflm.predict(model_file.interpreter(model), images, UNIT)
    _, out = model_file.io_details(model_file.interpreter(model))
    return np.round(scores / out["scale"] + out["zero_point"]).astype(np.int8)


@pytest.mark.slow
def test_mobilenet_in_the_unix_port_is_tflm_byte_for_byte():
    """The zoo MobileNet (CONV_2D, DEPTHWISE_CONV_2D, MEAN, FULLY_CONNECTED, SOFTMAX): every test sample with the
    viper kernels, the first 24 with the plain ones (0.6 s each here; the whole split runs in `doit calibrate`)."""
    files, model = package("mobilenet")
    images = samples()
    reference = tflm_outputs(model, images)
    viper, viper_seconds = unix.run(files, images, "viper", 300, "test")
    plain, plain_seconds = unix.run(files, images[:24], "plain", 300, "test")
    assert len(images) == 254
    assert np.array_equal(viper, reference)
    assert np.array_equal(plain, reference[:24])
    assert viper_seconds < plain_seconds


def test_wasm_port_runs_the_plain_kernels_with_the_same_outputs(tmp_path):
    """A second, independent MicroPython: the official WebAssembly port under Node. It rejects the viper decorator,
    so te_model falls back to the plain kernels on its own (the import-time choice under test)."""
    assert (WASM / "micropython.mjs").exists(), "the npm package is missing: run tests/setup.sh"
    files, model = package("tiny_cnn")
    images = samples()[:3]
    script = ["import te_model, te_preprocess", "print('kernels', te_model.kernels.__name__)"]
    for image in images:
        script.append(f"print(te_model.invoke(te_preprocess.quantize({bytes(image.tobytes())!r})).hex())")
    writes = "\n".join(f"mp.FS.writeFile({json.dumps('/' + name)}, {json.dumps(text)});" for name, text in files.items())
    (tmp_path / "run.mjs").write_text(f"""import {{ loadMicroPython }} from {json.dumps(str(WASM / 'micropython.mjs'))};
const mp = await loadMicroPython({{ stdout: (line) => process.stdout.write(line + "\\n"), heapsize: 16 * 1024 * 1024 }});
{writes}
mp.runPython({json.dumps(chr(10).join(script))});
""")
    result = subprocess.run(["node", str(tmp_path / "run.mjs")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:2] == ["kernels", "te_kernels"]
    got = np.array([np.frombuffer(bytes.fromhex(line), np.int8) for line in lines[2:]])
    assert np.array_equal(got, tflm_outputs(model, images))


def write_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "micropython"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "main.py").write_text("print('main')\n")
    (folder / "mpremote.json").write_text(json.dumps({"march": "xtensawin", "filesystem_bytes": 2097152,
                                                      "heap_bytes": 4000000, "ram_bytes": 1,
                                                      "modules": list(generate.MODULES)}))
    return folder


def test_mpy_cross_is_found_beside_the_interpreter_without_path(tmp_path, monkeypatch):
    """`venv/bin/doit` run without activating the venv: the extra's tools are beside sys.executable, not on PATH."""
    import sys
    monkeypatch.setenv("PATH", str(tmp_path))
    files, _ = package("tiny_cnn")
    folder = write_folder(tmp_path, files)
    assert mpremote.build(folder, tmp_path / "state", tmp_path / "firmware.bin")["flash_used_bytes"] > 0
    assert (Path(sys.executable).parent / "mpy-cross").is_file()


def test_mpy_cross_compiles_every_module_for_the_esp32(tmp_path):
    files, _ = package("mobilenet")
    folder = write_folder(tmp_path, files)
    record = mpremote.build(folder, tmp_path / "state", tmp_path / "firmware.bin")
    mpys = sorted(p.name for p in (tmp_path / "state" / "micropython" / "mpy").iterdir())
    assert mpys == sorted(Path(name).stem + ".mpy" for name in generate.MODULES)
    assert 0 < record["flash_used_bytes"] < record["flash_available_bytes"]
    # the 32-bit target: mpy-cross -march=xtensawin marks the viper code as native Xtensa (arch 10, MP_NATIVE_ARCH_XTENSAWIN,
    # in the header)
    header = (tmp_path / "state" / "micropython" / "mpy" / "te_kernels_viper.mpy").read_bytes()[:4]
    assert header[0] == ord("M") and header[2] >> 2 == 10


def test_a_viper_type_error_is_a_build_error_naming_the_line(tmp_path):
    files, _ = package("tiny_cnn")
    # a constant above 0x3FFFFFFF is a heap object on the ESP32: viper cannot add it to a machine int
    files["te_kernels_viper.py"] += "\n\n@micropython.viper\ndef broken(x: int) -> int:\n    return x + 0x40000000\n"
    line = files["te_kernels_viper.py"].splitlines().index("def broken(x: int) -> int:") + 1  # viper names the def
    folder = write_folder(tmp_path, files)
    with pytest.raises(TinyedgeError, match=rf"micropython/te_kernels_viper.py line {line}: ViperTypeError"):
        mpremote.build(folder, tmp_path / "state", tmp_path / "firmware.bin")


def test_no_board_on_the_port_is_a_clear_message(tmp_path):
    files, _ = package("tiny_cnn")
    with pytest.raises(TinyedgeError, match="no board on serial port /dev/ttyNOPE"):
        mpremote.upload(write_folder(tmp_path, files), tmp_path, "/dev/ttyNOPE")


def test_doit_with_the_micropython_backend_and_back(project_copy):
    """The built example switched to firmware.backend micropython: dataset and train are kept; codegen, calibrate (the
    whole test split, plain and viper, in the unix port) and build run; switching back restores from the cache."""
    write_manifest(project_copy, {"firmware": {"backend": "micropython"}})
    result = doit(project_copy)
    # quantize's code digest holds the backend's preflight hook (micropython: check): it may rerun, to the same bytes
    assert ran(result) - {"quantize"} == {"codegen", "calibrate", "build", "report"}, result.stdout
    calibration = json.loads((project_copy / "build" / "calibrate" / "calibration.json").read_text())
    assert calibration["runtime"] == "micropython unix (viper)"
    assert calibration["differing_samples"] == 0
    assert calibration["test_samples"] == 254
    folder = project_copy / "build" / "codegen" / "micropython"
    assert {"main.py", "te_model.py", "te_kernels.py", "te_kernels_viper.py"} <= {p.name for p in folder.iterdir()}
    build = json.loads((project_copy / "build" / "build" / "build.json").read_text())
    assert build["env"] == "micropython-xtensawin" and build["flash_used_bytes"] > 0
    budget = json.loads((project_copy / "build" / "codegen" / "budget.json").read_text())
    assert budget["arena"]["placement"] == "heap" and budget["arena"]["bytes"] == build["ram_used_bytes"]
    assert budget["flash"]["available_bytes"] == build["flash_available_bytes"] == 2097152
    # the preflight (issue 24): its own table, computed as codegen computes it (weights of any values)
    checked = doit(project_copy, "-a", "-s", "check")
    assert "no preflight" not in checked.stdout and "flash, MicroPython filesystem" in checked.stdout
    assert "fits esp32cam: arena in the MicroPython heap" in checked.stdout, checked.stdout
    preflight = json.loads((project_copy / "build" / "check" / "check.json").read_text())
    assert (preflight["arena"], preflight["flash"]) == (budget["arena"], budget["flash"])

    write_manifest(project_copy, {})
    back = doit(project_copy)
    restored = [block.split("\n")[0] for block in back.stdout.split(".  ") if "restored from cache" in block]
    assert {"codegen", "calibrate"} <= set(restored), back.stdout
    assert "differing_samples" not in json.loads(
        (project_copy / "build" / "calibrate" / "calibration.json").read_text())
