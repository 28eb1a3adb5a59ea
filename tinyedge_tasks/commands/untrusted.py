"""Handling a submission someone else made: unpack it without letting it write outside a folder, list what in
it would run the author's Python, and run the rebuild in a bubblewrap sandbox (no network, system read-only,
only the temporary folder writable, killed with its parent and after a time limit)."""
from __future__ import annotations

import ast
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import TinyedgeError

CHUNK = 1 << 20
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw", ".pyd", ".so", ".pth")  # what Python imports or runs
STANDARD_DODO = "from tinyedge_tasks import DOIT_CONFIG, stage_tasks\nglobals().update(stage_tasks())\n"
ENV_PASSED = ("PATH", "LANG", "LC_ALL", "TZ")  # nothing else of the caller's environment enters the sandbox


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    kind = stat.S_IFMT(info.external_attr >> 16)
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if "\\" in name or "\0" in name:
        return "a backslash or NUL in its name"
    if ".." in parts:
        return "a '..' component"
    if kind == stat.S_IFLNK:
        return "a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"a special file (mode {oct(kind)})"
    return None


def safe_extract(zip_path: Path, dest: Path, max_member_bytes: int, max_total_bytes: int,
                 max_members: int) -> list[str]:
    """Extract into `dest` (must not exist yet) every regular file of the zip, or nothing. Every member is
    checked before a byte is written; sizes are checked as declared and again as actually decompressed,
    since the headers are the author's word. On any failure `dest` is removed. Returns the file names."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TinyedgeError(f"{zip_path}: not a readable zip file ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise TinyedgeError(f"{zip_path}: {len(members):,} entries, more than the {max_members:,} allowed")
        seen, total = set(), 0
        for info in members:
            problem = _member_problem(info)
            if problem:
                raise TinyedgeError(f"{zip_path}: entry {info.filename!r} has {problem}; a submission holds only "
                                    "plain files at relative paths inside the project; refusing to unpack it")
            key = PurePosixPath(info.filename).as_posix().rstrip("/")
            if key in seen:
                raise TinyedgeError(f"{zip_path}: entry {info.filename!r} appears twice; refusing to unpack it")
            seen.add(key)
            if info.file_size > max_member_bytes:
                raise TinyedgeError(f"{zip_path}: entry {info.filename} expands to {info.file_size:,} bytes, more "
                                    f"than the {max_member_bytes:,} allowed per file")
            total += info.file_size
        if total > max_total_bytes:
            raise TinyedgeError(f"{zip_path}: entries expand to {total:,} bytes, more than the "
                                f"{max_total_bytes:,} allowed")
        dest.mkdir(parents=True)
        written, total = [], 0
        try:
            for info in members:
                if info.is_dir():
                    continue
                target = dest / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                size = 0
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                with archive.open(info) as source, os.fdopen(os.open(target, flags, 0o644), "wb") as out:
                    while chunk := source.read(CHUNK):
                        size, total = size + len(chunk), total + len(chunk)
                        if size > max_member_bytes or total > max_total_bytes:
                            raise TinyedgeError(
                                f"{zip_path}: entry {info.filename} expands past the limits ({max_member_bytes:,} "
                                f"bytes per file, {max_total_bytes:,} in all) although its header says "
                                f"{info.file_size:,} bytes; refusing the zip")
                        out.write(chunk)
                written.append(info.filename)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            shutil.rmtree(dest)
            raise TinyedgeError(f"{zip_path}: damaged entry ({exc}); refusing the zip") from None
        except TinyedgeError:
            shutil.rmtree(dest)
            raise
    return written


def _is_standard_dodo(path: Path) -> bool:
    """dodo.py is Python that doit runs: only the two standard lines (any docstring or comments) are data."""
    try:
        body = ast.parse(path.read_text(encoding="utf-8")).body
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return False
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return ast.dump(ast.Module(body, [])) == ast.dump(ast.Module(ast.parse(STANDARD_DODO).body, []))


def requires_trust(manifest_data: dict, root: Path) -> list[str]:
    """What in an unpacked project would run its author's Python: one line per file, naming it and why."""
    from ..ml.model_safety import TRUST_KEY, code_in_model_file
    from ..ml.zoo import ZOO
    found = []
    train = manifest_data.get("train") or {}
    spec = str(train.get("model", "tiny_cnn"))
    if train.get("trust_model_code"):
        found.append(f"tinyedge.yaml: {TRUST_KEY} is true: the author asks to load model files that hold code")
    if (root / "dodo.py").is_file() and not _is_standard_dodo(root / "dodo.py"):
        found.append("dodo.py: differs from the standard two lines (doit runs it as Python)")
    model = root / spec
    if spec not in ZOO and model.resolve().is_relative_to(root.resolve()) and (model.is_file() or model.is_dir()):
        found += [f"{spec}: {item}" for item in code_in_model_file(model)]
    elif spec not in ZOO and ":" in spec:
        found.append(f"tinyedge.yaml: train.model '{spec}' is a function in the author's module "
                     f"{spec.split(':')[0]}: training runs it")
    found += [f"{path.relative_to(root).as_posix()}: a Python file; the rebuild could import it"
              for path in sorted(root.rglob("*")) if path.suffix in CODE_SUFFIXES and path != root / "dodo.py"]
    return found


PRIVATE = ("/tmp", "/var/tmp", "/run")  # fresh and empty inside the sandbox


def _code_under(roots: tuple[str, ...]) -> list[Path]:
    """What the rebuild's Python needs that lies below `roots` (a venv, pipx or tox environment, a CI tool cache,
    a checkout in /tmp): the interpreter's prefixes and the real folder of its executable, this tinyedge and
    sys.path. Bound back read-only where the sandbox's empty tmpfs would hide them."""
    found = {Path(__file__).resolve().parents[2]}  # the folder holding this tinyedge_tasks
    found |= {Path(folder).resolve() for folder in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    found |= {Path(sys.executable).parent.absolute(), Path(sys.executable).resolve().parent}
    found |= {Path(entry).resolve() for entry in sys.path if entry and Path(entry).is_dir()}
    below = sorted(path for path in found if any(path.is_relative_to(root) for root in roots))
    return [path for path in below if not any(path != other and path.is_relative_to(other) for other in below)]


def sandboxed(cmd: list[str], workdir: Path, timeout: float, allow_write: list[Path] = (),
              env: dict[str, str] | None = None, no_sandbox: bool = False) -> subprocess.CompletedProcess:
    """Run `cmd` in `workdir` under bubblewrap: every namespace unshared (no network, own PIDs), the file system
    read-only but for `workdir` and `allow_write`, /tmp and /run private, no capabilities, a new session (no
    typing into the caller's terminal), killed with its parent and after `timeout` s. HOME, TMPDIR and the
    caches TensorFlow and matplotlib write point into `workdir`. Output is captured as text."""
    writable = [Path(workdir).resolve(), *(Path(p).resolve() for p in allow_write)]
    home = writable[0] / ".home"
    for folder in (home, home / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    full_env = {name: os.environ[name] for name in ENV_PASSED if name in os.environ}
    full_env.update({"HOME": str(home), "TMPDIR": str(home / "tmp"), "XDG_CACHE_HOME": str(home / "cache"),
                     "MPLCONFIGDIR": str(home / "matplotlib"), "PYTHONDONTWRITEBYTECODE": "1",
                     "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    full_env.update(env or {})
    if no_sandbox:
        command = cmd
    else:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise TinyedgeError("bubblewrap (bwrap) is not installed, and rebuilding someone else's submission "
                                "runs it without network and writes only to a temporary folder inside it; "
                                "install it with `apt-get install bubblewrap`, or pass --no-sandbox if you "
                                "trust the submission")
        command = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                   "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for private in PRIVATE:
            command += ["--tmpfs", private]
        for code in _code_under(PRIVATE):  # tinyedge and its Python path, when they live where tmpfs hides them
            command += ["--ro-bind", str(code), str(code)]
        for folder in writable:
            command += ["--bind", str(folder), str(folder)]
        command += ["--chdir", str(writable[0]), "--", *cmd]
    try:
        result = subprocess.run(command, cwd=writable[0], env=full_env, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TinyedgeError(f"{' '.join(cmd)}: stopped after {timeout:.0f} s (the time limit)") from None
    if not no_sandbox and result.returncode != 0 and result.stderr.startswith("bwrap:"):
        raise TinyedgeError(f"the bubblewrap sandbox could not start ({result.stderr.strip()}); user namespaces "
                            "may be disabled here (sysctl kernel.unprivileged_userns_clone); pass --no-sandbox "
                            "only if you trust the submission")
    return result
