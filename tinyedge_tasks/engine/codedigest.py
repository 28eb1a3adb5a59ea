"""The code a stage runs, found from its imports: the stage module's transitive import closure inside its package.

A hand-kept list of modules drifts (a helper called through another helper is forgotten, and an edit to it
keeps a stale cached result); the import statements cannot drift. Imports are read with a regular expression,
not by importing (a no-op `doit` must not load TensorFlow) and not with `ast` (a tenth of the cost): every
`import x` and `from x import a, b` line counts, also those inside functions, so a lazy import is code too.
"""
from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path

from .hashing import digest_bytes

IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([.\w]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)|import[ \t]+([^\n#;]+))",
                    re.MULTILINE)


def _root_dir(package: str) -> Path:
    return Path(sys.modules[package].__file__).parent


def _file_of(module: str, root: Path) -> Path | None:
    """The source file of a module of the package (a module file or a package's __init__.py)."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    candidates = [base.with_suffix(".py"), base / "__init__.py"] if parts else [
        root / "__init__.py", Path(getattr(sys.modules.get(module), "__file__", None) or root / "-")]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def _absolute(name: str, importer: str, is_package: bool) -> str:
    """`..x` seen in module `importer` -> the absolute module name."""
    dots = len(name) - len(name.lstrip("."))
    if not dots:
        return name
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - dots + 1]
    rest = name[dots:]
    return ".".join(base + ([rest] if rest else []))


@lru_cache(maxsize=None)
def _imports(module: str, root: Path) -> tuple[str, ...]:
    """Modules of the package that `module` names in an import statement (each with its parent packages)."""
    package = module.split(".")[0]
    path = _file_of(module, root)
    found: list[str] = []
    text = path.read_text(encoding="utf-8")
    for source, names, plain in IMPORT.findall(text):
        if plain:
            targets = [part.split(" as ")[0].strip() for part in plain.split(",")]
        else:
            base = _absolute(source, module, path.name == "__init__.py")
            listed = [part.split(" as ")[0].strip() for part in names.strip("()").replace("\n", " ").split(",")]
            targets = [base] + [f"{base}.{name}" for name in listed if name and name != "*"]
        for target in targets:
            parts = target.split(".")
            if parts[0] == package and len(parts) > 1 and _file_of(target, root):
                found.append(target)
    return tuple(dict.fromkeys(found))


def closure(module: str) -> list[Path]:
    """Every source file of the package that importing `module` runs: its own, those it imports (transitively)
    and their parent packages' `__init__.py`. A parent's own imports are not followed: a package's `__init__`
    declares (a backend's stage rows, the engine's table), it does not compute a stage's outputs. The root
    package's `__init__` (the doit glue) is left out for the same reason."""
    root = _root_dir(module.split(".")[0])
    pending, followed, files = [module], set(), set()
    while pending:
        name = pending.pop()
        if name in followed:
            continue
        followed.add(name)
        path = _file_of(name, root)
        if path is None:
            raise ImportError(f"{name}: no such module in {root}")
        parts = name.split(".")
        files |= {path, *(_file_of(".".join(parts[:n]), root) for n in range(2, len(parts)))}
        pending += _imports(name, root)
    return sorted(files)


@lru_cache(maxsize=None)
def code_digest(module: str, templates: tuple[str, ...] = (), hooks: tuple[str, ...] = ()) -> str:
    """Digest of the import closure of the module and of the hook modules it calls by name, and of every file in
    the template folders (package-relative)."""
    root = _root_dir(module.split(".")[0])
    files = sorted({path for name in (module, *hooks) for path in closure(name)})
    for folder in templates:
        files += sorted(p for p in (root / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return digest_bytes(b"".join(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes()
                                 for path in files))
