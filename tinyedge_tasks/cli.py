"""`tinyedge`: the few things that are not build tasks — the manifest's JSON Schema and cache upkeep. This is
their argument parsing; what each does is a module of tinyedge_tasks.commands (schema, cache_prune)."""
from __future__ import annotations

import argparse
import re
import sys

from .commands import cache_prune, schema

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'500M', '2G', '1.5GB', '1000' -> bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)i?B?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size such as 500M or 2G, found {text!r}")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyedge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    printer = commands.add_parser("schema", help="print the manifest's JSON Schema (or write it with --write)")
    printer.add_argument("--write", action="store_true", help=f"update {schema.SCHEMA_FILE.name} in the package")
    prune = commands.add_parser("cache-prune", help="forget cached results by age and size")
    prune.add_argument("--cache", help="the store folder (default: as doit finds it)")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="drop results unused for DAYS days")
    prune.add_argument("--max-size", type=parse_size, metavar="SIZE",
                       help="keep the most recently used results within SIZE (e.g. 2G)")
    args = parser.parse_args(argv)

    if args.command == "schema":
        return schema.run(args.write)
    if args.older_than is None and args.max_size is None:
        parser.error("cache-prune needs --older-than DAYS and/or --max-size SIZE")
    return cache_prune.run(args.cache, args.older_than, args.max_size)


if __name__ == "__main__":
    sys.exit(main())
