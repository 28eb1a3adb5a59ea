"""doit verify-submission FILE: rebuild a submission from its inputs in a fresh folder and compare digests.

The rebuild uses a new, empty cache (never the user's shared one), so every artifact is recomputed. Each
artifact's digest is compared with the one the submission recorded, and each file the zip carries with what
the rebuild made: a model edited after the fact shows up by name. Any difference fails the command.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..report import charts
from ..errors import TinyedgeError
from ..engine.hashing import digest_bytes, digest_file
from .submission import lock


def _read(archive: zipfile.ZipFile, name: str, path: Path) -> dict:
    try:
        return json.loads(archive.read(name))
    except KeyError:
        raise TinyedgeError(f"{path}: no {name} inside; expected a zip made by `doit submission`") from None


def _lock_differences(project, recorded: dict) -> list[str]:
    here = lock(project)
    differences = [f"{key}: submission {recorded.get(key)}, here {here[key]}"
                   for key in here if key != "packages" and recorded.get(key) != here[key]]
    packages = recorded.get("packages", {})
    differences += [f"{name}: submission {packages.get(name)}, here {version}"
                    for name, version in here["packages"].items() if packages.get(name) != version]
    return differences


def _unpack(archive: zipfile.ZipFile, digests: dict, folder: Path, path: Path) -> None:
    """Write the submission's inputs into `folder`; every recorded input must be there with its digest."""
    for name in archive.namelist():
        if not name.startswith("artifacts/") and name not in ("lock.json", "digests.json"):
            target = folder / name
            if not target.resolve().is_relative_to(folder.resolve()):
                raise TinyedgeError(f"{path}: entry {name} points outside the project; not a tinyedge submission")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    missing = [name for name in digests["inputs"] if not (folder / name).is_file()]
    if missing:
        raise TinyedgeError(
            f"{path}: the submission holds these inputs by digest only: {', '.join(missing)}; the data set is "
            "left out unless the submission is made with `doit submission --with-data`; ask for that zip")
    altered = [name for name, digest in digests["inputs"].items() if digest_file(folder / name) != digest]
    if altered:
        raise TinyedgeError(f"{path}: inputs differ from their recorded digests: {', '.join(altered)}")


def run(project, options, args) -> None:
    if len(args) != 1:
        raise TinyedgeError("usage: doit verify-submission FILE.zip (one zip made by `doit submission`)")
    path = Path(args[0]).absolute()
    if not zipfile.is_zipfile(path):
        raise TinyedgeError(f"{path}: not a zip file; expected a zip made by `doit submission`")
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory(prefix="tinyedge-verify-") as tmp:
        digests, recorded_lock = _read(archive, "digests.json", path), _read(archive, "lock.json", path)
        for line in _lock_differences(project, recorded_lock):
            print(f"note: version differs ({line}); artifacts may differ for that reason")
        folder = Path(tmp)
        _unpack(archive, digests, folder, path)
        print(f"rebuilding {path.name} in a fresh folder with an empty cache ...", flush=True)
        started = time.perf_counter()
        env = {**os.environ, "TINYEDGE_CACHE": str(folder / "cache")}
        result = subprocess.run([sys.executable, "-m", "doit"], cwd=folder, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise TinyedgeError(f"{path}: the rebuild failed (doit exit {result.returncode}):\n"
                                f"{(result.stdout + result.stderr)[-3000:]}")
        print(f"rebuilt in {time.perf_counter() - started:.1f} s")
        build = folder / digests["build_dir"]

        def rebuilt(name: str) -> str | None:
            return digest_file(build / name) if (build / name).is_file() else None

        rows = [[name, expected, rebuilt(name)] for name, expected in digests["artifacts"].items()]
        rows += [[f"{name.removeprefix('artifacts/')} (file in zip)", digest_bytes(archive.read(name)),
                  rebuilt(name.removeprefix("artifacts/"))]
                 for name in sorted(archive.namelist()) if name.startswith("artifacts/")]
    table = [[name, expected[:16], (got or "missing")[:16], "yes" if expected == got else "NO"]
             for name, expected, got in rows]
    print(charts.text_table(["artifact", "expected", "got", "identical"], table))
    differing = [row[0] for row in table if row[3] == "NO"]
    if differing:
        raise TinyedgeError(f"{path}: {len(differing)} of {len(table)} artifacts differ from the rebuild: "
                            f"{', '.join(differing)}")
    print(f"all {len(table)} artifacts identical")
