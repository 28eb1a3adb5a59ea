"""XXH3-128 digests of bytes, files and config, and doit's file checker built on them.

A file is rehashed only when its (mtime_ns, size) moved; a digest computed for a touched file is kept in
a small sqlite stat cache, so a `touch` costs one hash once, not one hash on every later run.
"""
from __future__ import annotations

import atexit
import json
import os
import sqlite3
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


STAT_CACHE = StatCache(Path("cache") / "digests.sqlite3")  # pipeline points it at the project's cache/


class XXH3Checker(FileChangedChecker):
    """doit `check_file_uptodate`: state is (mtime_ns, size, xxh3-128 hex digest)."""

    def check_modified(self, file_path, file_stat, state):
        mtime_ns, size, digest = state
        if (file_stat.st_mtime_ns, file_stat.st_size) == (mtime_ns, size):
            return False
        if file_stat.st_size != size:
            return True
        return STAT_CACHE.digest(file_path) != digest

    def get_state(self, dep, current_state):
        stat = os.stat(dep)
        if current_state and tuple(current_state[:2]) == (stat.st_mtime_ns, stat.st_size):
            return None
        return stat.st_mtime_ns, stat.st_size, STAT_CACHE.digest(dep)
