"""The stage table and the one loop that turns it into doit tasks.

A stage is a row: the manifest keys it reads, the artifacts it needs, the files it makes, the tools whose
versions matter, and a module `tinyedge_tasks.stages.<name>` with `run(ctx)` (and, for a row with
`sources=True`, `sources(manifest)`: project files it reads, such as images). Adding a stage is adding a row
and a module. Stage modules are imported only to run, or (with `sources`) to make tasks: a no-op `doit` imports
no NumPy, TensorFlow or matplotlib.
"""
from __future__ import annotations

import fcntl
import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from . import __version__, manifest_loader
from .cache import Store, place_outputs
from .errors import TinyedgeError
from .hashing import STAT_CACHE, XXH3Checker, digest_bytes, digest_json

PACKAGE_DIR = Path(__file__).parent
STATE_DIR = "cache"  # doit's state, the lock and the stat cache: always the project's own folder


@dataclass(frozen=True)
class Stage:
    name: str
    doc: str
    reads: tuple[str, ...] = ()        # manifest keys (a section name covers every key below it)
    needs: tuple[str, ...] = ()        # artifacts of other stages, "stage/file"
    makes: tuple[str, ...] = ()        # files this stage writes into <build>/<name>/
    tools: tuple[str, ...] = ()        # distributions whose versions are part of the fingerprint
    uses: tuple[str, ...] = ()         # shared modules (or template folders) of tinyedge_tasks in the fingerprint
    sources: bool = False              # its module has sources(manifest); keep that module's imports light
    default: bool = True               # part of a plain `doit`
    enabled_by: str | None = None      # manifest key; when it is null the stage is off and ...
    passthrough: dict = field(default_factory=dict)  # ... its files are these artifacts of earlier stages
    optional: tuple[str, ...] = ()     # artifacts read only when their stage is on and makes or made them

    @property
    def module(self) -> str:
        return f"tinyedge_tasks.stages.{self.name}"


TF = ("tensorflow", "tf-keras", "numpy")
FIRMWARE_FILES = ("platformio.ini", "src/main.cpp", "src/model_data.cc", "src/model_data.h", "src/preprocess.c",
                  "src/preprocess.h")
PORT_PARAM = {"name": "port", "long": "port", "type": str, "default": "",
              "help": "serial port (else $TINYEDGE_PORT, firmware.port, or the only one found)"}

STAGES: tuple[Stage, ...] = (
    Stage("dataset", "Read the data set, resize it to the model input, split train/val/test by sample hash.",
          reads=("project.seed", "dataset"), makes=("data.npz", "dataset.json"),
          tools=("numpy", "pillow", "scikit-learn"), uses=("preprocess",), sources=True),
    Stage("train", "Build (zoo, user function or file) and train the float model; write metrics and history.",
          reads=("project.seed", "train"), needs=("dataset/data.npz", "dataset/dataset.json"),
          makes=("model.h5", "metrics.json", "history.json"), tools=TF, uses=("keras_util", "zoo"), sources=True),
    Stage("prune", "Prune the float model (magnitude or filter pruning) and fine-tune it.",
          reads=("project.seed", "train.batch_size", "train.learning_rate", "compression.prune"),
          needs=("train/model.h5", "dataset/data.npz"), makes=("model.h5", "prune.json"),
          tools=TF + ("tensorflow-model-optimization", "tflite-micro"),
          uses=("keras_util", "layers", "tflm", "preprocess", "stages/quantize"),
          enabled_by="compression.prune", passthrough={"model.h5": "train/model.h5"}),
    Stage("quantize", "Convert to a full-integer TFLite model, calibrated on a representative training sample.",
          reads=("project.seed", "train.batch_size", "train.learning_rate", "compression.quantize",
                 "compression.calibrate"),
          needs=("prune/model.h5", "dataset/data.npz"), makes=("model.tflite", "quantize.json", "layer_error.json"),
          tools=TF + ("tensorflow-model-optimization", "tflite-micro"), uses=("keras_util", "tflm", "preprocess")),
    Stage("calibrate", "Evaluate the int8 model on the test split in the TFLM runtime; find the smallest arena.",
          needs=("quantize/model.tflite", "dataset/data.npz", "train/metrics.json"),
          makes=("calibration.json",), tools=("tflite-micro", "numpy"), uses=("tflm",)),
    Stage("codegen", "Check the memory budget on the board; write the PlatformIO project (firmware/).",
          reads=("project.name", "board", "firmware.backend", "firmware.arena_margin", "firmware.led_class",
                 "dataset.input"),
          needs=("quantize/model.tflite", "calibrate/calibration.json", "dataset/dataset.json"),
          makes=("budget.json",) + tuple(f"firmware/{f}" for f in FIRMWARE_FILES),
          tools=("jinja2", "tflite-micro", "numpy"),
          uses=("boards", "board_schema", "tflm", "preprocess", "templates/esp32_arduino"), sources=True),
    Stage("build", "Run `pio run` on the generated project; record flash and RAM use (needs PlatformIO's "
          "ESP32 platform: network on first use).",
          needs=tuple(f"codegen/firmware/{f}" for f in FIRMWARE_FILES), makes=("build.json", "firmware.bin"),
          tools=("platformio",), default=False),
    Stage("report", "A self-contained HTML report and a Markdown summary of everything built so far.",
          reads=("project", "dataset", "train", "compression", "board", "firmware"),
          needs=("dataset/dataset.json", "dataset/data.npz", "train/history.json", "train/metrics.json",
                 "train/model.h5", "prune/model.h5", "quantize/model.tflite", "calibrate/calibration.json"),
          optional=("prune/prune.json", "quantize/layer_error.json", "codegen/budget.json", "build/build.json"),
          makes=("report.html", "report.md"), tools=TF + ("tflite-micro", "matplotlib"),
          uses=("keras_util", "tflm", "charts", "layers")),
)

STAGE_BY_NAME = {stage.name: stage for stage in STAGES}


@dataclass(frozen=True)
class Command:
    """A task that always runs and is never cached: side effects (flash, monitor) or views of the cache.

    Its module `tinyedge_tasks.commands.<name with _>` has `run(project, options, args)`: `options` holds
    the values of `params` (doit params: dicts with name/long/type/default/help), `args` the positional
    arguments when `pos_arg` is set."""

    name: str
    doc: str
    needs: tuple[str, ...] = ()        # artifacts built first
    params: tuple[dict, ...] = ()
    pos_arg: bool = False

    @property
    def module(self) -> str:
        return f"tinyedge_tasks.commands.{self.name.replace('-', '_')}"


COMMANDS: tuple[Command, ...] = (
    Command("experiments", "Tabulate every configuration the cache holds, with the keys that differ and a "
            "Pareto chart; nothing is retrained."),
    Command("submission", "Zip the manifest, boards, tool lock, digests, report, int8 model and firmware.",
            needs=("report/report.html", "calibrate/calibration.json"),
            params=({"name": "with_data", "long": "with-data", "type": bool, "default": False,
                     "help": "also include the data set (by default only its digest)"},)),
    Command("verify-submission", "Rebuild a submission zip in a fresh folder; exit non-zero if any artifact "
            "differs.", pos_arg=True),
    Command("flash", "Build the firmware and upload it to the board (`pio run -t upload`).",
            needs=tuple(f"codegen/firmware/{f}" for f in FIRMWARE_FILES),
            params=(PORT_PARAM,)),
    Command("monitor", "Show the board's serial output (top classes, inference time) at its serial speed.",
            params=(PORT_PARAM,)),
)


@lru_cache(maxsize=None)
def tool_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@lru_cache(maxsize=None)
def _code_digest(name: str, uses: tuple[str, ...]) -> str:
    """The stage module, the modules it uses and every file of the template folders it uses."""
    files = [PACKAGE_DIR / "stages" / f"{name}.py"]
    for use in uses:
        folder = PACKAGE_DIR / use
        files += sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder.with_suffix(".py")]
    return digest_bytes(b"".join(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes()
                                 for path in files))


@dataclass
class StageContext:
    """What a stage's run() gets: its config slice, its input files, and a staging folder for its outputs."""

    stage: Stage
    config: manifest_loader.ConfigSlice
    inputs: dict[str, Path]      # "stage/file" -> path of the artifact in the build folder
    sources: list[Path]          # project files the stage reads (images, a model file, a board file)
    out: Path                    # write outputs here; they are moved into place only if run() succeeds
    root: Path                   # the project folder

    def log(self, message: str) -> None:
        print(f"  {message}", flush=True)


class Project:
    """One manifest, its build and cache folders, and the doit task of each stage."""

    def __init__(self, manifest_path: Path):
        self.manifest = manifest_loader.load(manifest_path, memo_dir=manifest_path.parent / STATE_DIR)
        self.root = self.manifest.root
        self.build = self.root / self.manifest.get("project.build_dir")
        self.state = self.root / STATE_DIR
        store_dir = os.environ.get("TINYEDGE_CACHE") or self.manifest.get("project.cache_dir") or STATE_DIR
        self.store = Store(self.root / store_dir)
        STAT_CACHE.db_path = self.state / "digests.sqlite3"

    def relative(self, path: Path) -> str:
        """Paths inside the project are kept relative, so a copied or moved project stays up to date."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def enabled(self, stage: Stage) -> bool:
        return stage.enabled_by is None or self.manifest.get(stage.enabled_by) is not None

    def artifact(self, name: str) -> Path:
        """Path of an artifact 'stage/file', following the passthrough of a stage that is off."""
        stage_name, file_name = name.split("/", 1)
        stage = STAGE_BY_NAME[stage_name]
        if not self.enabled(stage) and file_name in stage.passthrough:
            return self.artifact(stage.passthrough[file_name])
        return self.build / stage_name / file_name

    def optional_inputs(self, stage: Stage) -> tuple[list[str], list[str]]:
        """(file_deps, present): optional artifacts a default stage makes in this run are file_deps; those of a
        stage outside the default run (a build that needs the network) count only when they exist, so
        reading them never forces that stage to run. Artifacts of a stage that is off or absent are left out."""
        made, present = [], []
        for name in stage.optional:
            owner_name, file_name = name.split("/", 1)
            owner = STAGE_BY_NAME.get(owner_name)
            if owner is None or not self.enabled(owner):
                continue
            if owner.default and file_name in owner.makes:
                made.append(name)
            elif self.artifact(name).is_file():
                present.append(name)
        return made, present

    def sources(self, stage: Stage) -> list[Path]:
        return sorted(importlib.import_module(stage.module).sources(self.manifest)) if stage.sources else []

    def fingerprint(self, stage: Stage) -> dict:
        """Everything but the input files that decides a stage's outputs."""
        return {
            "stage": stage.name,
            "tinyedge": __version__,
            "python": platform.python_version(),
            "code": _code_digest(stage.name, stage.uses),
            "tools": {tool: tool_version(tool) for tool in stage.tools},
            "config": self.manifest.slice(stage.reads, stage.name).values,
        }

    def task(self, stage: Stage) -> dict:
        if not self.enabled(stage):
            return {"basename": stage.name, "doc": f"{stage.doc} (off: no {stage.enabled_by})", "actions": []}
        sources = self.sources(stage)
        made, present = self.optional_inputs(stage)
        fingerprint = self.fingerprint(stage)
        if present:
            fingerprint["optional"] = {n: STAT_CACHE.digest(self.artifact(n)) for n in present}
        return {
            "basename": stage.name,
            "doc": stage.doc,
            "actions": [(execute, [self, stage])],
            "file_dep": [self.relative(self.artifact(n)) for n in stage.needs + tuple(made)]
                        + [self.relative(p) for p in sources],
            "targets": [self.relative(self.build / stage.name / f) for f in stage.makes],
            "uptodate": [config_changed(digest_json(fingerprint))],
            "clean": True,
            "verbosity": 2,
        }

    def command_task(self, command: Command) -> dict:
        return {
            "basename": command.name,
            "doc": command.doc,
            "actions": [(run_command, [self, command])],
            "file_dep": [self.relative(self.artifact(n)) for n in command.needs],
            "uptodate": [False],
            "params": list(command.params),
            "pos_arg": "args" if command.pos_arg else None,
            "verbosity": 2,
        }


_LOCK_HANDLE = None
RUN_ENV = "TINYEDGE_DOIT_RUN"  # pid of the doit process that loaded dodo.py; its `doit -n` workers inherit it


def _take_project_lock(state: Path) -> None:
    """One building doit run per project: a second run stops with a message instead of racing the first.

    The lock file names the run, so the worker processes of one `doit -n N` run share the lock."""
    global _LOCK_HANDLE
    if _LOCK_HANDLE is not None:
        return
    state.mkdir(parents=True, exist_ok=True)
    handle = open(state / "build.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        if holder == os.environ.get(RUN_ENV):
            return
        raise TinyedgeError(
            f"another doit run (pid {holder}) is building this project (lock {state / 'build.lock'}); "
            "wait for it to finish and run doit again") from None
    handle.seek(0)
    handle.truncate()
    handle.write(os.environ.get(RUN_ENV, str(os.getpid())))
    handle.flush()
    _LOCK_HANDLE = handle


def execute(project: Project, stage: Stage):
    """doit action: restore the stage's outputs from the cache, or run it and store them."""
    staging = None
    try:
        _take_project_lock(project.state)
        fingerprint = project.fingerprint(stage)
        made, present = project.optional_inputs(stage)
        inputs = {name: project.artifact(name) for name in (*stage.needs, *made, *present)}
        sources = project.sources(stage)
        digests = {name: STAT_CACHE.digest(p) for name, p in inputs.items()}
        for done, path in enumerate(sources, 1):
            digests[project.relative(path)] = STAT_CACHE.digest(path)
            if len(sources) >= 1000 and done % (len(sources) // 10) == 0:
                print(f"  hashed {done}/{len(sources)} input files", flush=True)
        key = digest_json({"fingerprint": fingerprint, "inputs": digests})
        (project.build / ".tmp").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{stage.name}-", dir=project.build / ".tmp"))
        destination = project.build / stage.name

        record = project.store.lookup(key)
        started = time.perf_counter()
        if record and project.store.restore(key, record, staging):
            place_outputs(staging, destination)
            print(f"  restored from cache in {time.perf_counter() - started:.3f} s "
                  f"(computed in {record.get('seconds', 0):.1f} s; key {key[:12]})", flush=True)
            return None
        staging.mkdir(parents=True, exist_ok=True)
        context = StageContext(stage, project.manifest.slice(stage.reads, stage.name), inputs, sources,
                               staging, project.root)
        importlib.import_module(stage.module).run(context)
        seconds = time.perf_counter() - started
        missing = [f for f in stage.makes if not (staging / f).is_file()]
        if missing:
            raise TinyedgeError(f"stage {stage.name} did not write {', '.join(missing)} (a bug in tinyedge)")
        project.store.save(key, {**fingerprint, "inputs": digests, "seconds": seconds}, staging)
        place_outputs(staging, destination)
        print(f"  done in {seconds:.1f} s, stored in cache (key {key[:12]})", flush=True)
        return None
    except TinyedgeError as exc:
        return TaskFailed(str(exc))
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def run_command(project: Project, command: Command, task):
    """doit action of a Command: its errors are messages, not tracebacks."""
    try:
        importlib.import_module(command.module).run(project, task.options or {}, task.pos_arg_val or [])
        return None
    except TinyedgeError as exc:
        return TaskFailed(str(exc))


_PROJECT: Project | None = None


def project() -> Project:
    """The project of the current folder's tinyedge.yaml."""
    global _PROJECT
    if _PROJECT is None:
        _PROJECT = Project(Path.cwd() / manifest_loader.MANIFEST_NAME)
    return _PROJECT


def _creator(row: Stage | Command):
    def create():
        try:
            current = project()
            return current.task(row) if isinstance(row, Stage) else current.command_task(row)
        except TinyedgeError as exc:
            print(f"tinyedge: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    create.__name__ = f"task_{row.name}"
    create.__doc__ = row.doc
    return create


def stage_tasks() -> dict:
    """`task_<stage>` functions for a dodo.py namespace; a manifest error stops doit with its message.

    Called when doit imports dodo.py, in the project folder, before doit opens its state in cache/."""
    Path(STATE_DIR).mkdir(exist_ok=True)
    os.environ[RUN_ENV] = str(os.getpid())
    return {f"task_{row.name}": _creator(row) for row in STAGES + COMMANDS}


DOIT_CONFIG = {
    "dep_file": f"{STATE_DIR}/doit-state.sqlite3",
    "backend": "sqlite3",
    "check_file_uptodate": XXH3Checker,
    "default_tasks": [stage.name for stage in STAGES if stage.default],
    "verbosity": 2,
}
