"""Shared fixtures: real projects in temporary folders, run with the real `doit` command line.

`built_project` trains the example once per session (real TensorFlow on sklearn's digits, a few epochs)
and every test that only reads artifacts shares it; a test that edits the manifest works on `project_copy`.
`transfer_project` is the same for transfer learning: a MobileNetV2 0.35 from a weights file, trained tiny.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"   # tests/fixtures/regenerate.py makes the binary ones

# The Ctrl-C tests play a user at a terminal, whose doit starts with SIGINT's default action. A suite started as a
# background job of a non-interactive shell (`cmd &`, nohup, some CI runners) has SIGINT ignored, and an ignored
# or blocked signal is inherited across fork and exec: every doit the tests start would then ignore Ctrl-C too.
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
FAST = {"train": {"epochs": 4}, "compression": {"calibrate": {"samples": 100}}}
FINE_TUNED = 10   # top backbone layers the transfer project unfreezes
TRANSFER = {   # 32x32 is the smallest input keras.applications builds; 90 digits of 3 classes, skewed
    "dataset": {"source": "digits3.npz", "input": {"width": 32, "height": 32, "channels": 1, "transform": "symmetric"},
                "augment": {"flip": "horizontal", "rotate": 10, "zoom": 0.1, "brightness": 0.2}},
    "train": {"model": "mobilenet_v2", "width_multiplier": 0.35, "pretrained": "backbone.h5", "epochs": 4,
              "learning_rate": 0.01, "fine_tune": {"epochs": 1, "layers": FINE_TUNED, "learning_rate": 0.0001},
              "early_stopping": {"patience": 3, "monitor": "val_loss"}, "class_weight": "balanced"},
    "compression": {"calibrate": {"samples": 30}},
}


def merge(base: dict, changes: dict) -> dict:
    """Deep-merge `changes` into a copy of `base`; a value of None removes the key."""
    merged = dict(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_manifest(project: Path, changes: dict | None = None) -> dict:
    """The example manifest with FAST settings and `changes` on top, written to `project`."""
    data = merge(merge(yaml.safe_load((REPO / "tinyedge.yaml").read_text()), FAST), changes or {})
    (project / "tinyedge.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return data


def make_project(folder: Path, changes: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dodo.py", folder / "dodo.py")
    shutil.copytree(REPO / "boards", folder / "boards", dirs_exist_ok=True)
    write_manifest(folder, changes)
    return folder


def doit(project: Path, *args: str, check: bool = True, env: dict | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real doit command line in `project`; output captured as text."""
    full_env = {k: v for k, v in os.environ.items() if k != "TINYEDGE_CACHE"}
    full_env.update(env or {})
    result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=project, env=full_env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"doit {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def tflm_outputs(tflite: bytes, inputs):
    """The real TFLM runtime's int8 outputs for each quantized input (the reference calibrate checks against)."""
    import numpy as np

    from tinyedge_tasks.tflite import model_file
    engine = model_file.tflm(tflite, model_file.PROBE_ARENA)
    outputs = []
    for sample in inputs:
        engine.set_input(sample[None], 0)
        engine.invoke()
        outputs.append(engine.get_output(0).copy().ravel())
    return np.stack(outputs)


def one_line_error(result: subprocess.CompletedProcess, command: str = "validate") -> str:
    """doit's failure: 'TaskFailed - taskid:<command>', then our one line, and nothing after it."""
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    tail = result.stdout.split(f"TaskFailed - taskid:{command}\n", 1)[1]
    lines = [line for line in tail.splitlines() if line]
    assert len(lines) == 1, tail
    return lines[0]


def ran(result: subprocess.CompletedProcess) -> set[str]:
    """Names of the tasks doit executed (lines '.  name'), not those up to date ('-- name')."""
    return {line[3:].strip() for line in result.stdout.splitlines() if line.startswith(".  ")}


def digests(project: Path) -> dict:
    """Every file under build/ (staging folders aside) -> its SHA-256: "nothing built is lost" is this unchanged."""
    build = project / "build"
    return {str(p.relative_to(build)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(build.rglob("*")) if p.is_file() and ".tmp" not in p.parts}


TRAINED = {"built_project", "project_copy", "espdl_project", "transfer_project"}   # fixtures that train a model


def pytest_collection_modifyitems(items):
    """A test that uses a trained project is `slow`, so that `pytest -m "not slow"` never trains the example."""
    for item in items:
        if TRAINED & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> Path:
    """The example project, built once with plain `doit`; treat as read-only."""
    project = make_project(tmp_path_factory.mktemp("built") / "project")
    doit(project)
    return project


def digits3(count: int = 90):
    """Three digit classes, skewed (the class weights have something to do), as uint8 8x8 images."""
    import numpy as np
    from sklearn.datasets import load_digits
    digits = load_digits()
    keep = np.flatnonzero(digits.target < 3)[:count]
    return np.round(digits.images[keep] * (255 / 16)).astype(np.uint8), digits.target[keep]


def backbone_file(path: Path, seed: int = 1, model: str = "mobilenet_v2", alpha: float = 0.35) -> None:
    """An untrained keras.applications backbone's weights, saved as Keras saves a downloaded no-top file."""
    subprocess.run([sys.executable, str(REPO / "tests" / "backbone_file.py"), str(path), str(seed), model,
                    str(alpha)], check=True, capture_output=True)


def transfer_files(project: Path) -> Path:
    """The data set and the weights file the TRANSFER manifest names, written into `project`."""
    import numpy as np
    x, y = digits3()
    np.savez(project / "digits3.npz", x=x, y=y)
    backbone_file(project / "backbone.h5")
    return project


@pytest.fixture(scope="session")
def transfer_project(tmp_path_factory) -> Path:
    """The TRANSFER project trained once (`doit train`: frozen epochs, then the fine-tuned top); read-only."""
    project = transfer_files(make_project(tmp_path_factory.mktemp("transfer") / "project", TRANSFER))
    doit(project, "train")
    return project


def switched(built_project: Path, tmp_path_factory, name: str, changes: dict) -> Path:
    """A copy of the built example with `changes` written into its manifest and `doit` rerun: a test module's
    shared project (its tests take private copies)."""
    project = tmp_path_factory.mktemp(name) / "project"
    shutil.copytree(built_project, project)
    write_manifest(project, changes)
    doit(project)
    return project


def private_copy(project: Path, tmp_path: Path) -> Path:
    """A private copy of a built project (build/, cache/ and doit state included): free to edit."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    return copy


@pytest.fixture
def project_copy(built_project, tmp_path) -> Path:
    """A private copy of the built project."""
    return private_copy(built_project, tmp_path)


@pytest.fixture(autouse=True)
def ctrl_c_left_as_found():
    """A test that leaves SIGINT blocked or its handler changed in this process would hand that to every doit
    the later tests start (both are inherited across fork and exec): fail the test that did it."""
    yield
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handler = signal.getsignal(signal.SIGINT)
    assert not blocked and handler is signal.default_int_handler, f"SIGINT left blocked={blocked}, handler={handler}"
