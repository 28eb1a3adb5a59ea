"""`tinyedge`: the few things that are not build tasks — the manifest's JSON Schema and cache upkeep."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

SCHEMA_FILE = Path(__file__).parent / "schema" / "tinyedge.schema.json"
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'500M', '2G', '1.5GB', '1000' -> bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)i?B?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size such as 500M or 2G, found {text!r}")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def json_schema() -> dict:
    """The manifest schema as JSON Schema, for editors (yaml-language-server) and checks."""
    from .backends import builtin
    from .config.manifest import Manifest
    schema = Manifest.model_json_schema()
    schema["$defs"]["Firmware"]["properties"]["backend"]["examples"] = builtin()  # editors offer these
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tinyedge.yaml"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def store_dir(cache: str | None) -> Path:
    """--cache, else $TINYEDGE_CACHE, else the manifest's project.cache_dir, else ./cache."""
    if cache:
        return Path(cache)
    if os.environ.get("TINYEDGE_CACHE"):
        return Path(os.environ["TINYEDGE_CACHE"])
    from .config.manifest_loader import MANIFEST_NAME, load
    if Path(MANIFEST_NAME).exists():
        return Path(load(MANIFEST_NAME).get("project.cache_dir") or "cache")
    return Path("cache")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyedge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser("schema", help="print the manifest's JSON Schema (or write it with --write)")
    schema.add_argument("--write", action="store_true", help=f"update {SCHEMA_FILE.name} in the package")
    prune = commands.add_parser("cache-prune", help="forget cached results by age and size")
    prune.add_argument("--cache", help="the store folder (default: as doit finds it)")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="drop results unused for DAYS days")
    prune.add_argument("--max-size", type=parse_size, metavar="SIZE",
                       help="keep the most recently used results within SIZE (e.g. 2G)")
    args = parser.parse_args(argv)

    if args.command == "schema":
        if args.write:
            SCHEMA_FILE.parent.mkdir(exist_ok=True)
            SCHEMA_FILE.write_text(schema_text())
            print(f"wrote {SCHEMA_FILE}")
        else:
            sys.stdout.write(schema_text())
        return 0

    from .engine.cache import Store
    from .errors import TinyedgeError
    if args.older_than is None and args.max_size is None:
        parser.error("cache-prune needs --older-than DAYS and/or --max-size SIZE")
    try:
        folder = store_dir(args.cache)
    except TinyedgeError as exc:
        print(f"tinyedge: {exc}", file=sys.stderr)
        return 2
    if not (folder / "actions").is_dir():
        print(f"tinyedge: {folder} holds no tinyedge cache (no actions/ folder); nothing to prune", file=sys.stderr)
        return 2
    stats = Store(folder).prune(args.older_than, args.max_size)
    print(f"{folder}: kept {stats['actions_kept']} results, dropped {stats['actions_dropped']}, "
          f"removed {stats['objects_removed']} objects ({stats['bytes_freed'] / 1e6:.1f} MB freed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
