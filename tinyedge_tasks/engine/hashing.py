"""XXH3-128 digests of bytes, files and config, and doit's file checker built on them.

A file is rehashed only when its (mtime_ns, size) moved; a digest computed for a touched file is kept in
a small sqlite stat cache, so a `touch` costs one hash once, not one hash on every later run.

A folder (a data set of 100,000 images) is one dependency with a tree state: a stat-only scan of every file
under it decides whether anything moved, and only then are the files whose stat moved rehashed.
"""
from __future__ import annotations

import atexit
import json
import os
import sqlite3
import stat as stat_mode
import sys
from pathlib import Path

import xxhash
from doit.dependency import FileChangedChecker

CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def digest_json(value) -> str:
    """Digest of a JSON-able value in canonical form (sorted keys, no spaces)."""
    return digest_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def digest_file(path: str | os.PathLike, progress: bool = False) -> str:
    hasher = xxhash.xxh3_128()
    size = os.path.getsize(path)
    done = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(block)
            done += len(block)
            if progress and size > 256 * CHUNK and done % (64 * CHUNK) == 0:
                print(f"  hashing {path}: {done * 100 // size}%", file=sys.stderr)
    return hasher.hexdigest()


class StatCache:
    """(path, mtime_ns, size) -> digest, persisted in sqlite under the cache folder."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._conn: sqlite3.Connection | None = None
        self._pending: dict[tuple, str] = {}

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.db_path, timeout=30)
            self._conn.execute("create table if not exists digests "
                               "(path text primary key, mtime_ns integer, size integer, digest text)")
            atexit.register(self.flush)
        return self._conn

    def digest(self, path: str | os.PathLike) -> str:
        path = os.path.abspath(path)
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        if key in self._pending:
            return self._pending[key]
        row = self._connect().execute("select mtime_ns, size, digest from digests where path = ?",
                                      (path,)).fetchone()
        if row and (row[0], row[1]) == key[1:]:
            return row[2]
        digest = digest_file(path, progress=True)
        self._pending[key] = digest
        return digest

    def flush(self) -> None:
        if self._conn is None or not self._pending:
            return
        with self._conn:
            self._conn.executemany("insert or replace into digests values (?, ?, ?, ?)",
                                   [(p, m, s, d) for (p, m, s), d in self._pending.items()])
        self._pending.clear()


def tree_stats(folder: str | os.PathLike) -> list[str]:
    """'relative path\0mtime_ns\0size' of every regular file below `folder`, sorted; hidden names (.DS_Store,
    .git) are left out. One stat per file and nothing else: 100,000 files must scan in a fraction of a second."""
    found = []
    pending = [(os.fspath(folder), "")]
    while pending:
        path, prefix = pending.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                if entry.is_dir():
                    pending.append((entry.path, f"{prefix}{name}/"))
                elif entry.is_file():
                    st = entry.stat()
                    found.append(f"{prefix}{name}\0{st.st_mtime_ns}\0{st.st_size}")
    found.sort()
    return found


def tree_stat_digest(stats: list[str]) -> str:
    """Equal digests: nothing under the folder was added, removed, renamed or written."""
    return digest_bytes("\n".join(stats).encode())


def tree_content_digest(folder: str | os.PathLike, stats: list[str]) -> str:
    """Digest of names and contents; a file is rehashed only when its stat moved (STAT_CACHE)."""
    names = [line.split("\0", 1)[0] for line in stats]
    return digest_bytes("\n".join(f"{n}\0{STAT_CACHE.digest(os.path.join(folder, n))}" for n in names).encode())


STAT_CACHE = StatCache(Path("cache") / "digests.sqlite3")  # pipeline points it at the project's cache/


class XXH3Checker(FileChangedChecker):
    """doit `check_file_uptodate`: a file's state is (mtime_ns, size, xxh3-128 hex digest); a folder's is
    ("tree", stat digest, content digest)."""

    def check_modified(self, file_path, file_stat, state):
        if stat_mode.S_ISDIR(file_stat.st_mode):
            if not state or state[0] != "tree":
                return True
            stats = tree_stats(file_path)
            return tree_stat_digest(stats) != state[1] and tree_content_digest(file_path, stats) != state[2]
        if state and state[0] == "tree":
            return True
        mtime_ns, size, digest = state
        if (file_stat.st_mtime_ns, file_stat.st_size) == (mtime_ns, size):
            return False
        if file_stat.st_size != size:
            return True
        return STAT_CACHE.digest(file_path) != digest

    def get_state(self, dep, current_state):
        if os.path.isdir(dep):
            stats = tree_stats(dep)
            stat_digest = tree_stat_digest(stats)
            if current_state and tuple(current_state[:2]) == ("tree", stat_digest):
                return None
            return "tree", stat_digest, tree_content_digest(dep, stats)
        stat = os.stat(dep)
        if current_state and tuple(current_state[:2]) == (stat.st_mtime_ns, stat.st_size):
            return None
        return stat.st_mtime_ns, stat.st_size, STAT_CACHE.digest(dep)
