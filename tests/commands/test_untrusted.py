"""Issue 14: untrusted submissions and zips run no code. Every test feeds a real hostile input and checks that the
places it aims at, outside the test's working folder, were not written (model files: tests/ml/test_model_safety.py)."""
from __future__ import annotations

import json
import socket
import stat
import struct
import sys
import threading
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import doit, make_project
from tinyedge_tasks.commands.submission import _project_file
from tinyedge_tasks.commands.untrusted import requires_trust, safe_extract, sandboxed
from tinyedge_tasks.engine.hashing import digest_file
from tinyedge_tasks.engine.pipeline import Project
from tinyedge_tasks.errors import TinyedgeError

LIMITS = {"max_member_bytes": 1 << 20, "max_total_bytes": 4 << 20, "max_members": 100}


# --- hostile zips --------------------------------------------------------------------------------------

def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def _refused(zip_path: Path, dest: Path, expected: str) -> None:
    with pytest.raises(TinyedgeError, match=expected):
        safe_extract(zip_path, dest, **LIMITS)
    assert not dest.exists()  # checked before writing, or removed


def test_parent_path_member(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = _zip(tmp_path / "up.zip", [("ok.txt", b"fine"), ("../../outside/escaped", b"x")])
    _refused(hostile, tmp_path / "work" / "dest", "'..' component")
    assert not any(outside.iterdir())


def test_absolute_member(tmp_path):
    target = Path("/tmp") / f"tinyedge-absolute-{uuid.uuid4().hex}"
    hostile = _zip(tmp_path / "abs.zip", [(str(target), b"x")])
    _refused(hostile, tmp_path / "dest", "absolute path")
    assert not target.exists()


def test_symlink_member(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    hostile = _zip(tmp_path / "link.zip", [(link, str(outside).encode()), ("link/planted", b"x")])
    _refused(hostile, tmp_path / "dest", "symbolic link")
    assert not any(outside.iterdir())


def test_zip_bomb_is_refused_by_its_declared_size(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("zeros.bin", "w", force_zip64=True) as member:
        block = bytes(1 << 20)
        for _ in range(200):
            member.write(block)
    assert bomb.stat().st_size < 1 << 20  # 200 MB in under 1 MB
    _refused(bomb, tmp_path / "dest", "expands to 209,715,200 bytes")


def test_zip_lying_about_its_size_is_refused_while_extracting(tmp_path):
    liar = _zip(tmp_path / "liar.zip", [("small.txt", b"hello"), ("zeros.bin", bytes(20 << 20))])
    data = bytearray(liar.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if struct.unpack_from("<I", data, start + offset)[0] == 20 << 20:
                struct.pack_into("<I", data, start + offset, 1000)
            start += 4
    liar.write_bytes(bytes(data))
    assert [i.file_size for i in zipfile.ZipFile(liar).infolist()] == [5, 1000]  # the header now lies
    _refused(liar, tmp_path / "dest", "damaged entry|expands past")


def test_plain_zip_extracts(tmp_path):
    good = _zip(tmp_path / "good.zip", [("tinyedge.yaml", b"board: esp32cam\n"), ("boards/x.yaml", b"a: 1\n")])
    assert safe_extract(good, tmp_path / "dest", **LIMITS) == ["tinyedge.yaml", "boards/x.yaml"]
    assert (tmp_path / "dest/boards/x.yaml").read_bytes() == b"a: 1\n"


def test_verify_submission_refuses_a_parent_path_member(tmp_path):
    """The same check through the command line, before anything is unpacked."""
    teacher, outside = make_project(tmp_path / "teacher"), tmp_path / "outside"
    outside.mkdir()
    hostile = _zip(tmp_path / "up.zip", [("digests.json", b"{}"), ("../outside/escaped", b"x")])
    result = doit(teacher, "verify-submission", str(hostile), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "'..' component" in output and "Traceback" not in output
    assert not any(outside.iterdir())


def test_submission_never_carries_a_file_from_outside(tmp_path):
    root, secret = tmp_path / "project", tmp_path / "secret.yaml"
    (root / "boards").mkdir(parents=True)
    secret.write_text("private: 1\n")
    (root / "boards/linked.yaml").symlink_to(secret)
    (root / "boards/esp32cam.yaml").write_text("name: esp32cam\n")
    project = SimpleNamespace(root=root)
    project.relative = lambda path: Project.relative(project, path)  # the engine's own rule
    assert _project_file(project, root / "boards/esp32cam.yaml", "board") == "boards/esp32cam.yaml"
    for path in (root / "boards" / "../../secret.yaml", root / "boards/linked.yaml", secret):
        with pytest.raises(TinyedgeError, match="lies outside the project folder"):
            _project_file(project, path, "board")


# --- user code and the sandbox -------------------------------------------------------------------------

def test_requires_trust_names_what_runs_code(tmp_path):
    (tmp_path / "mymodels.py").write_text("def build(shape, classes): ...\n")
    (tmp_path / "dodo.py").write_text('"""Doc."""\nfrom tinyedge_tasks import DOIT_CONFIG, stage_tasks\n\n'
                                      "globals().update(stage_tasks())\n")
    found = requires_trust({"train": {"model": "mymodels:build"}}, tmp_path)
    assert any("train.model 'mymodels:build'" in line for line in found)
    assert any(line.startswith("mymodels.py:") for line in found) and not any("dodo.py" in x for x in found)
    (tmp_path / "dodo.py").write_text("import os\nfrom tinyedge_tasks import DOIT_CONFIG, stage_tasks\n")
    assert any(line.startswith("dodo.py:") for line in requires_trust({}, tmp_path))
    (tmp_path / "dodo.py").unlink()
    (tmp_path / "mymodels.py").unlink()
    assert requires_trust({"train": {"model": "tiny_cnn"}}, tmp_path) == []


@pytest.fixture
def listener():
    """A TCP server on loopback, outside any sandbox, recording who connects."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    seen, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                seen.append(server.accept()[0].recv(16))
            except TimeoutError:
                pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


HOSTILE_MODULE = '''
import socket
from pathlib import Path


def build(input_shape, num_classes):
    tried = []
    for target in {targets!r}:
        try:
            Path(target).write_text("escaped")
            tried.append(f"write {{target}} ok")
        except OSError as exc:
            tried.append(f"write {{target}} refused: {{exc.strerror}}")
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"leak")
        tried.append("connect ok")
    except OSError as exc:
        tried.append(f"connect refused: {{exc.strerror}}")
    raise RuntimeError("hostile: " + "; ".join(tried))
'''


def _hostile_submission(folder: Path, targets: list[Path], port: int) -> Path:
    """A zip in the layout of `doit submission` whose train.model runs the author's module."""
    project = make_project(folder / "student", {"train": {"model": "student:build"}})
    (project / "student.py").write_text(HOSTILE_MODULE.format(targets=[str(t) for t in targets], port=port))
    files = {path.relative_to(project).as_posix(): path for path in sorted(project.rglob("*")) if path.is_file()}
    digests = {"build_dir": "build", "inputs": {name: digest_file(path) for name, path in files.items()},
               "artifacts": {}, "data_included": False}
    return _zip(folder / "student.zip", [*((name, path.read_bytes()) for name, path in files.items()),
                                         ("lock.json", b"{}"), ("digests.json", json.dumps(digests).encode())])


@pytest.mark.slow
@pytest.mark.bwrap
def test_hostile_submission_is_refused_then_contained_by_the_sandbox(tmp_path, listener):
    port, seen = listener
    outside = tmp_path / "outside"
    outside.mkdir()
    system = Path(sys.prefix) / f"tinyedge-escaped-{uuid.uuid4().hex}"  # visible, read-only in the sandbox
    submission = _hostile_submission(tmp_path, [outside / "escaped.txt", system], port)
    teacher = make_project(tmp_path / "teacher")
    try:
        refused = doit(teacher, "verify-submission", str(submission), check=False)
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "would run its author's Python" in output
        assert "train.model 'student:build'" in output and "student.py: a Python file" in output

        trusted = doit(teacher, "verify-submission", "--trust", str(submission), check=False)
        output = trusted.stdout + trusted.stderr
        assert trusted.returncode != 0 and "inside a bubblewrap sandbox" in output
        assert "the rebuild failed" in output and "hostile: " in output  # reported by the verification
        assert f"write {outside / 'escaped.txt'} refused: No such file or directory" in output  # not mounted
        assert f"write {system} refused: Read-only file system" in output
        assert "connect refused: Connection refused" in output  # the sandbox's own, empty loopback
        assert not any(outside.iterdir()) and not system.exists() and seen == []
    finally:
        system.unlink(missing_ok=True)


@pytest.mark.bwrap
def test_the_same_code_escapes_without_the_sandbox(tmp_path, listener):
    """The control: the listener and the targets are reachable, so only the sandbox stops the hostile module."""
    port, seen = listener
    target = tmp_path / "outside" / "escaped.txt"
    target.parent.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "student.py").write_text(HOSTILE_MODULE.format(targets=[str(target)], port=port))
    driver = [sys.executable, "-c", "import student; student.build((32, 32, 1), 10)"]
    contained = sandboxed(driver, work, timeout=60)
    assert "refused: No such file or directory; connect refused" in contained.stderr and not target.exists()
    bare = sandboxed(driver, work, timeout=60, no_sandbox=True)
    assert f"write {target} ok; connect ok" in bare.stderr and target.read_text() == "escaped"
    for _ in range(50):
        if seen:
            break
        threading.Event().wait(0.05)
    assert seen == [b"leak"]


@pytest.mark.bwrap
def test_sandbox_system_is_read_only(tmp_path):
    """Judged on the host's disk: a write that lands in the sandbox's private tmpfs (/tmp, where this test's
    folder lies) is no escape; one that reaches a host file is. The interpreter's own prefix is bound back
    read-only wherever it lives (a venv under /tmp too), so the sandbox's Python starts and cannot alter it."""
    work = tmp_path / "work"
    work.mkdir()
    targets = [Path(sys.prefix) / f"tinyedge-escape-{uuid.uuid4().hex}",
               Path(sys.executable).resolve().parent / f"tinyedge-escape-{uuid.uuid4().hex}",
               tmp_path / "beside-the-work-folder.txt"]
    script = ("import sys\nfor target in sys.argv[1:]:\n    try:\n        open(target, 'w').write('x')\n"
              "        print(target, 'written')\n    except OSError as exc:\n        print(target, exc.strerror)\n")
    try:
        result = sandboxed([sys.executable, "-c", script, *map(str, targets)], work, timeout=60)
        assert result.returncode == 0, result.stderr  # the sandbox's Python started, wherever it lives
        assert not any(target.exists() for target in targets), result.stdout
        assert f"{targets[0]} Read-only file system" in result.stdout  # bound back, read-only
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


@pytest.mark.bwrap
def test_sandbox_time_limit(tmp_path):
    with pytest.raises(TinyedgeError, match="time limit"):
        sandboxed([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, timeout=2)


def test_without_bwrap_the_message_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TinyedgeError, match="apt-get install bubblewrap"):
        sandboxed(["true"], tmp_path, timeout=5)
