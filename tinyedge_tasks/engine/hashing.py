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
import pickle
import sqlite3
import stat as stat_mode
import sys
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
    """(path, mtime_ns, size) -> digest, and a folder's (stat digest -> content digest), persisted in sqlite
    under the cache folder."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._conn: sqlite3.Connection | None = None
        self._pending: dict[tuple, str] = {}
        self._pending_trees: dict[str, tuple[str, str]] = {}

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.db_path, timeout=30)
            self._conn.execute("create table if not exists digests "
                               "(path text primary key, mtime_ns integer, size integer, digest text)")
            self._conn.execute("create table if not exists trees (path text primary key, stats text, digest text)")
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

    def tree_digest(self, folder: str | os.PathLike, stat_digest: str) -> str:
        """Digest of the names and contents under `folder`: remembered for its stat digest (a touched file
        costs one rehash once, not a full pass on every later no-op); otherwise only files whose stat moved
        are read, the rest come from one query."""
        folder = os.path.abspath(folder)
        remembered = self._pending_trees.get(folder) or self._connect().execute(
            "select stats, digest from trees where path = ?", (folder,)).fetchone()
        if remembered and remembered[0] == stat_digest:
            return remembered[1]
        tree = scan_tree(folder)
        prefix = os.path.join(folder, "")
        known = {row[0]: row[1:] for row in self._connect().execute(
            "select path, mtime_ns, size, digest from digests where path > ? and path < ?",
            (prefix, prefix + "\U0010ffff"))}
        moved = [i for i, rel in enumerate(tree.paths) if (known.get(prefix + rel) or (None, None))[:2]
                 != (tree.mtimes[i], tree.sizes[i])]
        for done, i in enumerate(moved, 1):
            path = prefix + tree.paths[i]
            known[path] = (tree.mtimes[i], tree.sizes[i], digest_file(path))
            self._pending[(path, tree.mtimes[i], tree.sizes[i])] = known[path][2]
            if len(moved) >= 1000 and done % (len(moved) // 10) == 0:
                print(f"  hashed {done}/{len(moved)} new or changed files in {folder}", file=sys.stderr)
        lines = [f"{rel}\0{known[prefix + rel][2]}" for rel in tree.paths]
        digest = digest_bytes("\n".join(lines).encode())
        self._pending_trees[folder] = (stat_digest, digest)
        return digest

    def flush(self) -> None:
        if self._conn is None or not (self._pending or self._pending_trees):
            return
        with self._conn:
            self._conn.executemany("insert or replace into digests values (?, ?, ?, ?)",
                                   [(p, m, s, d) for (p, m, s), d in self._pending.items()])
            self._conn.executemany("insert or replace into trees values (?, ?, ?)",
                                   [(p, s, d) for p, (s, d) in self._pending_trees.items()])
        self._pending.clear()
        self._pending_trees.clear()


@dataclass
class Tree:
    """Every regular file under a folder: relative path, mtime_ns and size, sorted by path; hidden names
    (.DS_Store, .git) are left out."""

    paths: list[str]
    mtimes: list[int]
    sizes: list[int]


def _list(root: str, rel: str) -> tuple[list[str], list[int], list[int], list[str]]:
    """Names (sorted), mtimes and sizes of the regular files in one folder, and its subfolders. A stat
    relative to the folder's descriptor (fstatat) is cheaper than one through the whole path."""
    names, mtimes, sizes, folders = [], [], [], []
    descriptor = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with os.scandir(descriptor) as entries:
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                if entry.is_dir():
                    folders.append(f"{rel}{name}/")
                elif entry.is_file():
                    stat = entry.stat()
                    names.append(name)
                    mtimes.append(stat.st_mtime_ns)
                    sizes.append(stat.st_size)
    finally:
        os.close(descriptor)
    order = sorted(range(len(names)), key=names.__getitem__)
    return [names[i] for i in order], [mtimes[i] for i in order], [sizes[i] for i in order], folders


def _as_listed(rel: str, names: list[str], mtimes: list[int], sizes: list[int]) -> tuple:
    return rel, names, mtimes, sizes


def _folder_digest(rel: str, names: list[str], mtimes: list[int], sizes: list[int]) -> tuple[str, str]:
    hasher = xxhash.xxh3_128("\0".join(names).encode())
    hasher.update(array("q", mtimes).tobytes())
    hasher.update(array("q", sizes).tobytes())
    return rel, hasher.hexdigest()


def _walk(root: str, folders: list[str], keep: Callable) -> list[tuple]:
    """keep(folder, names, mtimes, sizes) for each of `folders` and every folder below them."""
    found, pending = [], list(folders)
    while pending:
        rel = pending.pop()
        names, mtimes, sizes, below = _list(root, rel)
        found.append(keep(rel, names, mtimes, sizes))
        pending += below
    return found


def _walk_in_child(root: str, folders: list[str], keep: Callable) -> Callable[[], list]:
    """_walk in a forked process; returns a function that collects its result. One stat costs ~2 us of
    kernel time and threads cannot overlap them (the GIL), so 100,000 files scan in half the time on two
    cores. A child that fails is redone here, so its error (a folder removed meanwhile) shows as usual."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: scan, send, leave without running the parent's exit handlers
        code = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as out:
                out.write(pickle.dumps(_walk(root, folders, keep)))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)

    def result() -> list:
        with os.fdopen(read_end, "rb") as received:
            data = received.read()
        _, status = os.waitpid(pid, 0)
        return pickle.loads(data) if status == 0 else _walk(root, folders, keep)
    return result


def _walk_tree(folder: str | os.PathLike, keep: Callable) -> list[tuple]:
    """keep(...) of every folder under `folder`, sorted by folder. One stat per file: the subfolders (class
    folders) are shared out among the cores when there are several and no other thread runs (fork copies
    only the calling thread)."""
    root = os.fspath(folder)
    names, mtimes, sizes, below = _list(root, "")
    workers = min(len(below), len(os.sched_getaffinity(0))) if threading.active_count() == 1 else 1
    shares = [below[i::workers] for i in range(workers)] if below else [[]]
    children = [_walk_in_child(root, share, keep) for share in shares[1:]]
    found = [keep("", names, mtimes, sizes), *_walk(root, shares[0], keep)]
    for result in children:
        found += result()
    return sorted(found, key=lambda listed: listed[0])


def tree_stat_digest(folder: str | os.PathLike) -> str:
    """Equal digests: nothing under the folder was added, removed, renamed or written. Each folder's files
    are digested where they were listed, so a no-op moves 32 bytes per folder, not 100,000 names."""
    return digest_bytes("\n".join(f"{rel}\0{digest}" for rel, digest in _walk_tree(folder, _folder_digest)).encode())


def scan_tree(folder: str | os.PathLike) -> Tree:
    """The full listing, for the content digest (when the stat digest moved)."""
    tree = Tree([], [], [])
    for rel, names, mtimes, sizes in _walk_tree(folder, _as_listed):
        tree.paths += [rel + name for name in names]
        tree.mtimes += mtimes
        tree.sizes += sizes
    return tree


STAT_CACHE = StatCache(Path("cache") / "digests.sqlite3")  # pipeline points it at the project's cache/


class XXH3Checker(FileChangedChecker):
    """doit `check_file_uptodate`: a file's state is (mtime_ns, size, xxh3-128 hex digest); a folder's is
    ("tree", stat digest, content digest)."""

    def check_modified(self, file_path, file_stat, state):
        if stat_mode.S_ISDIR(file_stat.st_mode):
            if not state or state[0] != "tree":
                return True
            stat_digest = tree_stat_digest(file_path)
            return stat_digest != state[1] and STAT_CACHE.tree_digest(file_path, stat_digest) != state[2]
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
            stat_digest = tree_stat_digest(dep)
            if current_state and tuple(current_state[:2]) == ("tree", stat_digest):
                return None
            return "tree", stat_digest, STAT_CACHE.tree_digest(dep, stat_digest)
        stat = os.stat(dep)
        if current_state and tuple(current_state[:2]) == (stat.st_mtime_ns, stat.st_size):
            return None
        return stat.st_mtime_ns, stat.st_size, STAT_CACHE.digest(dep)
