"""doit submission: one zip that anyone can rebuild and check bit for bit with `doit verify-submission FILE`.

Layout: the project's inputs at their own paths (tinyedge.yaml, dodo.py, the board file, files the stages
read such as a user model module), lock.json (Python, platform and tool versions), digests.json (every input
and every artifact of the default pipeline), and artifacts/<stage>/<file> for what is handed in: the report,
the int8 model, the firmware sources. The data set travels by digest, its files only with --with-data.
The zip itself is deterministic: sorted entries, fixed dates and modes.
"""
from __future__ import annotations

import json
import platform
import zipfile
from pathlib import Path

from .._version import __version__
from ..artifacts import INT8_TFLITE
from ..errors import TinyedgeError
from ..engine.hashing import STAT_CACHE
from ..engine.pipeline import tool_version

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ENGINE_TOOLS = ("doit", "xxhash", "pyyaml", "pydantic", "jinja2", "platformio")
HANDED_IN = ("report/", INT8_TFLITE, "codegen/")  # artifacts carried in the zip, by prefix
DATA_STAGE = "dataset"


def lock(project) -> dict:
    tools = sorted({tool for stage in project.stages for tool in stage.tools} | set(ENGINE_TOOLS) | {"matplotlib"})
    return {"tinyedge": __version__, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "system": platform.system(),
            "machine": platform.machine(), "packages": {tool: tool_version(tool) for tool in tools}}


def _project_file(project, path: Path, what: str) -> str:
    """The name a file travels under; the file must really be inside the project: no '..' in its name, and
    no symbolic link on the way that leads out (a board named '../../x' or a linked dodo.py would otherwise
    carry a file from elsewhere on the disk into the zip)."""
    relative = project.relative(path)
    root = project.root.resolve()
    if Path(relative).is_absolute() or ".." in Path(relative).parts or not path.resolve().is_relative_to(root):
        raise TinyedgeError(f"{path}: {what} lies outside the project folder {root} (resolved: {path.resolve()}), "
                            "so a submission cannot carry it; move it into the project and point the manifest at it")
    return Path(relative).as_posix()


def inputs(project, with_data: bool) -> tuple[dict[str, Path], dict[str, Path]]:
    """(carried, by digest only): project-relative name -> path of every input file (the board file is
    codegen's source)."""
    carried = {_project_file(project, path, "a project file"): path
               for path in (project.manifest.path, project.root / "dodo.py")}
    data_only = {}
    for stage in project.stages:
        if project.enabled(stage) and stage.default:
            for path in project.sources(stage):
                name = _project_file(project, path, f"a file stage {stage.name} reads")
                (carried if stage.name != DATA_STAGE or with_data else data_only)[name] = path
    return carried, data_only


def artifacts(project) -> dict[str, Path]:
    """'stage/file' -> path of every file the default pipeline put under the build folder."""
    found = {}
    for stage in project.stages:
        folder = project.build / stage.name
        if project.enabled(stage) and stage.default and folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.resolve().is_relative_to(folder.resolve()):
                    raise TinyedgeError(f"{path}: a link out of the build folder; artifacts are files the "
                                        f"stages wrote; remove it (`doit clean {stage.name}`) and rebuild")
                if path.is_file():
                    found[path.relative_to(project.build).as_posix()] = path
    return found


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def run(project, options, args) -> None:
    with_data = bool(options.get("with_data"))
    carried, data_only = inputs(project, with_data)
    built = artifacts(project)
    handed_in = {name: path for name, path in built.items()
                 if name.startswith(HANDED_IN) or (with_data and name.startswith(f"{DATA_STAGE}/"))}
    digests = {"build_dir": project.manifest.get("project.build_dir"),
               "inputs": {name: STAT_CACHE.digest(path) for name, path in sorted({**carried, **data_only}.items())},
               "artifacts": {name: STAT_CACHE.digest(path) for name, path in sorted(built.items())},
               "data_included": with_data}
    entries = {name: path.read_bytes() for name, path in carried.items()}
    entries.update({f"artifacts/{name}": path.read_bytes() for name, path in handed_in.items()})
    entries["lock.json"] = json.dumps(lock(project), indent=1, sort_keys=True).encode()
    entries["digests.json"] = json.dumps(digests, indent=1, sort_keys=True).encode()

    folder = project.build / "submission"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{project.manifest.get('project.name')}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(entries):
            _add(archive, name, entries[name])
    partial.replace(target)
    print(f"{project.relative(target)}: {target.stat().st_size:,} bytes; {len(carried)} input files, "
          f"{len(handed_in)} artifacts carried, {len(built)} artifact digests"
          + ("" if with_data else f"; data set by digest only ({len(data_only)} source files, "
                                  f"{DATA_STAGE}/ artifacts not carried; --with-data to include them)"))
    print(f"check it anywhere with: doit verify-submission {project.relative(target)}")
