"""`tinyedge cache-prune`: forget cached results by age and size, in the store doit would use."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def store_dir(cache: str | None) -> Path:
    """--cache, else $TINYEDGE_CACHE, else the manifest's project.cache_dir, else ./cache."""
    if cache:
        return Path(cache)
    if os.environ.get("TINYEDGE_CACHE"):
        return Path(os.environ["TINYEDGE_CACHE"])
    from ..config.manifest_loader import MANIFEST_NAME, load
    if Path(MANIFEST_NAME).exists():
        return Path(load(MANIFEST_NAME).get("project.cache_dir") or "cache")
    return Path("cache")


def run(cache: str | None, older_than: float | None, max_size: int | None) -> int:
    """Prune the store; a folder that holds no tinyedge cache is a message, exit 2."""
    from ..engine.cache import Store
    from ..errors import TinyedgeError
    try:
        folder = store_dir(cache)
    except TinyedgeError as exc:
        print(f"tinyedge: {exc}", file=sys.stderr)
        return 2
    if not (folder / "actions").is_dir():
        print(f"tinyedge: {folder} holds no tinyedge cache (no actions/ folder); nothing to prune", file=sys.stderr)
        return 2
    stats = Store(folder).prune(older_than, max_size)
    print(f"{folder}: kept {stats['actions_kept']} results, dropped {stats['actions_dropped']}, "
          f"removed {stats['objects_removed']} objects ({stats['bytes_freed'] / 1e6:.1f} MB freed)")
    return 0
