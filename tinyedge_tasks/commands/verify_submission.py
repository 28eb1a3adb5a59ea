"""doit verify-submission FILE: rebuild a submission from its inputs in a fresh folder and compare digests.

A submission is someone else's project: it is unpacked with size and path checks, refused if anything in it
would run its author's Python (a module:function model, a model file with code, a non-standard dodo.py, a
.py file) unless --trust, and rebuilt inside a bubblewrap sandbox: no network, the system read-only, only
the temporary folder writable (--no-sandbox runs it bare, for a trusted zip on a machine without bwrap).

The rebuild uses a new, empty cache (never the user's shared one), so every artifact is recomputed. Each
artifact's digest is compared with the one the submission recorded, and each file the zip carries with what
the rebuild made: a model edited after the fact shows up by name. Any difference fails the command.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..report import charts
from ..errors import TinyedgeError
from ..engine.hashing import digest_file
from .submission import lock
from .untrusted import requires_trust, safe_extract, sandboxed

MAX_MEMBERS = 200_000
MAX_MEMBER_BYTES = 2 << 30
MAX_TOTAL_BYTES = 8 << 30
REBUILD_SECONDS = 4 * 3600


def _read(unpacked: Path, name: str, path: Path) -> dict:
    try:
        return json.loads((unpacked / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise TinyedgeError(f"{path}: no readable {name} inside; expected a zip made by `doit submission`") from None


def _lock_differences(project, recorded: dict) -> list[str]:
    here = lock(project)
    differences = [f"{key}: submission {recorded.get(key)}, here {here[key]}"
                   for key in here if key != "packages" and recorded.get(key) != here[key]]
    packages = recorded.get("packages", {})
    differences += [f"{name}: submission {packages.get(name)}, here {version}"
                    for name, version in here["packages"].items() if packages.get(name) != version]
    return differences


def _relative_name(name, what: str, path: Path) -> str:
    if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts or not name.strip("/."):
        raise TinyedgeError(f"{path}: {what} {name!r} is not a relative path inside the project; "
                            "not a tinyedge submission")
    return name


def _unpack(unpacked: Path, names: list[str], digests: dict, folder: Path, path: Path) -> None:
    """Move the submission's recorded inputs into `folder`; anything else outside artifacts/ is refused,
    every recorded input must be there with its digest."""
    inputs = {_relative_name(name, "input", path) for name in digests["inputs"]}
    extra = [name for name in names if name not in inputs | {"lock.json", "digests.json"}
             and not name.startswith("artifacts/")]
    if extra:
        raise TinyedgeError(f"{path}: entries not recorded as inputs in digests.json: {', '.join(extra[:10])}; "
                            "not a zip made by `doit submission`")
    missing = sorted(inputs - set(names))
    if missing:
        raise TinyedgeError(
            f"{path}: the submission holds these inputs by digest only: {', '.join(missing)}; the data set is "
            "left out unless the submission is made with `doit submission --with-data`; ask for that zip")
    for name in sorted(inputs):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (unpacked / name).rename(folder / name)
    altered = [name for name, digest in digests["inputs"].items() if digest_file(folder / name) != digest]
    if altered:
        raise TinyedgeError(f"{path}: inputs differ from their recorded digests: {', '.join(altered)}")


def run(project, options, args) -> None:
    if len(args) != 1:
        raise TinyedgeError("usage: doit verify-submission FILE.zip (one zip made by `doit submission`)")
    path = Path(args[0]).absolute()
    if not zipfile.is_zipfile(path):
        raise TinyedgeError(f"{path}: not a zip file; expected a zip made by `doit submission`")
    import yaml
    with tempfile.TemporaryDirectory(prefix="tinyedge-verify-") as tmp:
        unpacked, folder = Path(tmp) / "zip", Path(tmp) / "project"
        names = safe_extract(path, unpacked, MAX_MEMBER_BYTES, MAX_TOTAL_BYTES, MAX_MEMBERS)
        digests, recorded_lock = _read(unpacked, "digests.json", path), _read(unpacked, "lock.json", path)
        for line in _lock_differences(project, recorded_lock):
            print(f"note: version differs ({line}); artifacts may differ for that reason")
        folder.mkdir()
        _unpack(unpacked, names, digests, folder, path)
        manifest = yaml.safe_load((folder / "tinyedge.yaml").read_text(encoding="utf-8")) or {}
        build_dir = _relative_name(digests["build_dir"], "build_dir", path)
        if build_dir != ((manifest.get("project") or {}).get("build_dir") or "build"):
            raise TinyedgeError(f"{path}: digests.json build_dir {build_dir!r} is not the manifest's "
                                "project.build_dir; not a zip made by `doit submission`")
        untrusted = requires_trust(manifest, folder)
        if untrusted and not options.get("trust"):
            raise TinyedgeError(f"{path}: rebuilding this submission would run its author's Python code:\n  "
                                + "\n  ".join(untrusted) + "\nread those files; rerun with --trust only if you "
                                "trust the author (the rebuild still runs in the sandbox unless --no-sandbox)")
        print(f"rebuilding {path.name} in a fresh folder with an empty cache"
              + (" (no sandbox)" if options.get("no_sandbox") else " inside a bubblewrap sandbox") + " ...",
              flush=True)
        started = time.perf_counter()
        result = sandboxed([sys.executable, "-P", "-m", "doit"], folder, REBUILD_SECONDS,
                           env={"TINYEDGE_CACHE": str(folder / ".tinyedge-cache")},
                           no_sandbox=bool(options.get("no_sandbox")))
        if result.returncode != 0:
            raise TinyedgeError(f"{path}: the rebuild failed (doit exit {result.returncode}):\n"
                                f"{(result.stdout + result.stderr)[-3000:]}")
        print(f"rebuilt in {time.perf_counter() - started:.1f} s")
        build = folder / build_dir

        def rebuilt(name: str) -> str | None:
            return digest_file(build / name) if (build / name).is_file() else None

        rows = [[name, expected, rebuilt(_relative_name(name, "artifact", path))]
                for name, expected in digests["artifacts"].items()]
        rows += [[f"{name.removeprefix('artifacts/')} (file in zip)", digest_file(unpacked / name),
                  rebuilt(name.removeprefix("artifacts/"))]
                 for name in sorted(names) if name.startswith("artifacts/")]
    table = [[name, expected[:16], (got or "missing")[:16], "yes" if expected == got else "NO"]
             for name, expected, got in rows]
    print(charts.text_table(["artifact", "expected", "got", "identical"], table))
    differing = [row[0] for row in table if row[3] == "NO"]
    if differing:
        raise TinyedgeError(f"{path}: {len(differing)} of {len(table)} artifacts differ from the rebuild: "
                            f"{', '.join(differing)}")
    print(f"all {len(table)} artifacts identical")
