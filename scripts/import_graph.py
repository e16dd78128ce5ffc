#!/usr/bin/env python3
"""The package's shape, counted from its imports: the direct children of ``ablate/`` and the arrows
between them.

A child is a top-level module (``ablate/analysis/stats.py``) or a subpackage (``ablate/analysis/``); an arrow
A -> B means some file inside A imports something inside B (at module level or inside a function;
``import ablate.x``, ``from ablate.x import y``, ``from ablate import x`` and relative imports all
count). Printed: the number of top-level modules, subpackages and distinct arrows, the longest
chain of arrows (layers), the children that import each other in a loop, and with ``--arrows``
every arrow.

    python scripts/import_graph.py            # the counts
    python scripts/import_graph.py --arrows   # and every arrow, A -> B
"""

from __future__ import annotations

import argparse
import ast
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "ablate"


def child_of(module: str) -> str | None:
    """The direct child of ``ablate`` that dotted ``module`` (``ablate.x.y``) lies in, or None."""
    parts = module.split(".")
    if parts[0] != "ablate" or len(parts) < 2:
        return None
    head = parts[1]
    if (ROOT / head).is_dir():
        return f"{head}/"
    return f"{head}.py" if (ROOT / f"{head}.py").is_file() else None


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Dotted names of the ablate modules ``path`` (a file under ``root``, the ``ablate`` folder)
    imports (``from ablate import x`` gives ablate.x)."""
    package = ["ablate", *path.relative_to(root).parent.parts]  # what a relative import is relative to
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ablate.") or a.name == "ablate"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "ablate":
                continue
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # from ablate import stats -> ablate.analysis.stats
    return found


@lru_cache(maxsize=None)
def arrows() -> frozenset[tuple[str, str]]:
    out = set()
    for path in ROOT.rglob("*.py"):
        me = child_of("ablate." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module in imported_modules(path):
            other = child_of(module)
            if me and other and other != me:
                out.add((me, other))
    return frozenset(out)


def children() -> list[str]:
    files = sorted(p.name for p in ROOT.glob("*.py"))
    packages = sorted(f"{p.name}/" for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    return files + packages


def layers(nodes: list[str], edges: frozenset[tuple[str, str]]) -> int:
    """The longest chain of arrows, counted in children (1 = imports none of the others); loops are
    broken at the first child met again."""
    out: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        out[a].add(b)
    depth: dict[str, int] = {}

    def visit(node: str, path: frozenset[str]) -> int:
        if node in depth:
            return depth[node]
        below = [visit(n, path | {node}) for n in out[node] if n not in path]
        depth[node] = 1 + max(below, default=0)
        return depth[node]

    return max((visit(n, frozenset()) for n in nodes), default=0)


def loops(nodes: list[str], edges: frozenset[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected groups of two or more children (Tarjan)."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        out[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in out[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for n in nodes:
        if n not in index:
            strong(n)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arrows", action="store_true", help="also list every arrow")
    args = parser.parse_args()
    nodes, edges = children(), arrows()
    modules = [n for n in nodes if n.endswith(".py")]
    packages = [n for n in nodes if n.endswith("/")]
    print(f"top-level modules: {len(modules)}  ({' '.join(modules)})")
    print(f"subpackages: {len(packages)}  ({' '.join(packages)})")
    print(f"distinct arrows between them: {len(edges)}")
    print(f"longest chain of arrows: {layers(nodes, edges)} children")
    groups = loops(nodes, edges)
    print(f"loops: {len(groups)}" + "".join(f"\n  {' <-> '.join(g)}" for g in groups))
    if args.arrows:
        for a, b in sorted(edges):
            print(f"{a} -> {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
