"""Content-addressed artifact store: action key -> output files, restored instead of recomputed.

Layout under the store folder:
  objects/ab/<xxh3-128>       file contents, named by digest
  actions/<action key>.json   what a stage run read (config slice, input digests) and made (outputs)
  locks/<action key>.lock     held (flock) by the process computing that action
Every write goes to a temporary name and is renamed into place, so a crash or a second process never
leaves a half-written entry; restored bytes are verified against their digest. Two processes that need the
same action at once (sweep variants, tune workers on machines sharing the folder) do not both compute it:
the second waits for the first's lock and then restores what it stored.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import xxhash

from .hashing import digest_file

GC_GRACE_SECONDS = 3600  # objects this young may belong to a save still under way in another process


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def place_outputs(staging: Path, destination: Path) -> None:
    """Move every file of `staging` into `destination` (one atomic rename each), then drop stale files."""
    destination.mkdir(parents=True, exist_ok=True)
    made = {p.relative_to(staging) for p in staging.rglob("*") if p.is_file()}
    for rel in sorted(made):
        (destination / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, destination / rel)
    for old in sorted(destination.rglob("*"), reverse=True):
        if old.is_file() and old.relative_to(destination) not in made:
            old.unlink()
        elif old.is_dir() and not any(old.iterdir()):
            old.rmdir()
    shutil.rmtree(staging, ignore_errors=True)


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.actions = self.root / "actions"
        self.locks = self.root / "locks"

    def _object(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    def _action(self, key: str) -> Path:
        return self.actions / f"{key}.json"

    def lookup(self, key: str) -> dict | None:
        try:
            return json.loads(self._action(key).read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._action(key).unlink(missing_ok=True)
            return None

    @contextmanager
    def computing(self, key: str, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Held while this process computes `key`; another holder makes it wait (on_wait says so first). The
        kernel drops the lock of a process that dies, so a killed run never blocks the next one."""
        self.locks.mkdir(parents=True, exist_ok=True)
        with open(self.locks / f"{key}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def save(self, key: str, record: dict, staging: Path) -> dict:
        """Store every file under `staging` and the action record that points at them."""
        outputs = {}
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            digest = digest_file(path)
            target = self._object(digest)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
                os.close(fd)
                shutil.copyfile(path, tmp)
                os.replace(tmp, target)
            outputs[path.relative_to(staging).as_posix()] = {"digest": digest, "size": path.stat().st_size}
        record = {**record, "outputs": outputs, "saved": time.time()}
        write_atomic(self._action(key), json.dumps(record, indent=1, sort_keys=True).encode())
        return record

    def read(self, digest: str) -> bytes | None:
        """The bytes stored under `digest`, verified; None when missing or corrupted."""
        try:
            data = self._object(digest).read_bytes()
        except FileNotFoundError:
            return None
        return data if xxhash.xxh3_128_hexdigest(data) == digest else None

    def restore(self, key: str, record: dict, staging: Path) -> bool:
        """Copy a recorded action's outputs into `staging`, verifying each digest.

        A missing or corrupted object drops the whole entry (it is recomputed) and returns False.
        """
        for rel, meta in record["outputs"].items():
            source = self._object(meta["digest"])
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = self.read(meta["digest"])
            if data is None:
                print(f"tinyedge: cache object {source} for {rel} is missing or corrupted; "
                      "dropped it, recomputing", file=sys.stderr)
                source.unlink(missing_ok=True)
                self._action(key).unlink(missing_ok=True)
                shutil.rmtree(staging, ignore_errors=True)
                return False
            target.write_bytes(data)
        os.utime(self._action(key))  # last use, for pruning by age
        return True

    def records(self) -> list[tuple[str, dict]]:
        """Every action the store holds, oldest first: what `doit experiments` tabulates."""
        found = []
        for path in sorted(self.actions.glob("*.json"), key=lambda p: p.stat().st_mtime):
            record = self.lookup(path.stem)
            if record is not None:
                found.append((path.stem, record))
        return found

    def prune(self, max_age_days: float | None = None, max_bytes: int | None = None,
              grace_seconds: float = GC_GRACE_SECONDS) -> dict:
        """Forget actions unused for `max_age_days`, then least recently used ones until the objects fit
        in `max_bytes`; delete objects no remaining action refers to."""
        now = time.time()
        actions = sorted(self.actions.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        kept, dropped = [], 0
        for path in actions:
            if max_age_days is not None and now - path.stat().st_mtime > max_age_days * 86400:
                path.unlink(missing_ok=True)
                dropped += 1
            else:
                kept.append(path)
        if max_bytes is not None:
            total, survivors = 0, []
            for path in kept:  # most recently used first
                record = self.lookup(path.stem) or {"outputs": {}}
                size = sum(meta["size"] for meta in record["outputs"].values())
                if total + size > max_bytes:
                    path.unlink(missing_ok=True)
                    dropped += 1
                else:
                    total += size
                    survivors.append(path)
            kept = survivors
        referenced = {meta["digest"] for path in kept
                      for meta in (self.lookup(path.stem) or {"outputs": {}})["outputs"].values()}
        freed = removed = 0
        for obj in self.objects.glob("*/*"):
            if obj.name not in referenced and now - obj.stat().st_mtime >= grace_seconds:
                freed += obj.stat().st_size
                obj.unlink()
                removed += 1
        for lock in self.locks.glob("*.lock"):  # a young lock, or one some process holds, stays
            if now - lock.stat().st_mtime < grace_seconds:
                continue
            with open(lock, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                lock.unlink()
        return {"actions_dropped": dropped, "actions_kept": len(kept), "objects_removed": removed,
                "bytes_freed": freed}
