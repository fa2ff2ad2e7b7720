"""The house's numbers (issue 24): lines, function-level imports, the longest functions, import
cycles between engine packages and product imports of the synthetic captures.

    .venv/bin/python scripts/house_stats.py [--json OUT.json]

Counts cover the product (``engine/`` and ``app/``, with ``engine/synthetic`` counted apart as
the fixture package). Lines are physical lines of ``.py`` files. A function-level import is an
``import`` statement anywhere inside a ``def``. Package cycles come from grimp's import graph
(the library under import-linter): a pair of ``engine.X`` packages that import each other,
directly or through their modules.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = "engine/synthetic"


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _function_imports(tree: ast.AST) -> int:
    count = 0
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            count += sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(fn)
                         if n is not fn)
    return count  # nested defs count their imports once per enclosing def; none are nested twice


def _functions(tree: ast.AST, rel: str) -> list[tuple[int, str]]:
    return [(n.end_lineno - n.lineno + 1, f"{rel}:{n.lineno} {n.name}") for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _package_cycles() -> list[str]:
    graph = grimp.build_graph("engine", include_external_packages=False, cache_dir=None)
    packages = sorted({".".join(m.split(".")[:2]) for m in graph.modules if m.count(".") >= 1})
    cycles = []
    for i, a in enumerate(packages):
        for b in packages[i + 1:]:
            if (graph.direct_import_exists(importer=a, imported=b, as_packages=True)
                    and graph.direct_import_exists(importer=b, imported=a, as_packages=True)):
                cycles.append(f"{a} <-> {b}")
    return cycles


def _synthetic_importers() -> list[str]:
    graph = grimp.build_graph("engine", "app", include_external_packages=False, cache_dir=None)
    found = []
    for m in sorted(graph.modules):
        if m.startswith("engine.synthetic"):
            continue
        for imported in graph.find_modules_directly_imported_by(m):
            if imported.startswith("engine.synthetic") or imported.startswith("tests"):
                found.append(f"{m} -> {imported}")
    return found


def house_stats() -> dict:
    product, fixtures, fn_imports, funcs = 0, 0, 0, []
    for path in _files("engine") + _files("app"):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        n_lines = text.count("\n") + (not text.endswith("\n") and bool(text))
        if rel.startswith(FIXTURES):
            fixtures += n_lines
            continue
        product += n_lines
        tree = ast.parse(text, filename=rel)
        fn_imports += _function_imports(tree)
        funcs += _functions(tree, rel)
    funcs.sort(reverse=True)
    return {"product_lines": product, "fixture_lines": fixtures,
            "function_level_imports": fn_imports,
            "longest_functions": [f"{n:4d} {name}" for n, name in funcs[:10]],
            "engine_package_cycles": _package_cycles(),
            "product_imports_of_fixtures": _synthetic_importers()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    stats = house_stats()
    for key, value in stats.items():
        if isinstance(value, list):
            print(f"{key} ({len(value)}):")
            for line in value:
                print(f"  {line}")
        else:
            print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
