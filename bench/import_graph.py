"""Figures of the package's import graph, from its source (ast, nothing is imported).

Prints: import circles (strongly connected groups of modules), upward imports, the longest
import chain ("floors": modules on the longest path, circles counted as one), and modules
over 500 lines. Every import counts, also one inside a function; imports under
`if TYPE_CHECKING:` do not (they never run).

Layers, low to high: the base (the package's __init__, config, db, migrations, errors,
lock, text, periods), the wings (content,
audience, delivery, digests, feeds, ...; in the flat package, every other module but the
ones below), the features on top of them (cron.py / runner.py, scaffold.py / project.py),
and the edge: the CLI (cli/ or cli*.py) and __main__.py. An upward import is one from a lower layer to a higher one.

Usage: python bench/import_graph.py [PACKAGE_DIR]   (default: ./newsletter)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

BASE = {"config", "db", "migrations", "migration_set", "errors", "lock", "text", "periods"}
FEATURES = {"cron", "runner", "scaffold", "project"}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(name: str, modules: set[str]) -> int:
    parts = name.split(".")[1:]
    if not parts:
        return 0
    if parts[0] in ("cli", "__main__") or parts[0].startswith("cli_"):
        return 3
    if len(parts) == 1 and parts[0] in FEATURES:
        return 2
    if len(parts) == 1 and parts[0] in BASE:
        return 0
    return 1


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not _is_package(target, modules):
                found.add(target)
    return found


def _is_package(name: str, modules: set[str]) -> bool:
    return any(m.startswith(name + ".") for m in modules)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            groups.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "newsletter").resolve()
    paths = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    modules = set(paths)
    graph = {name: imports_of(name, path, modules) for name, path in paths.items()}
    groups = strongly_connected(graph)
    circles = [g for g in groups if len(g) > 1]
    group_of = {m: i for i, g in enumerate(groups) for m in g}
    # Longest chain over the condensed graph (a circle is one floor).
    memo: dict[int, list[str]] = {}

    def chain(i: int) -> list[str]:
        if i not in memo:
            best: list[str] = []
            for m in groups[i]:
                for t in graph[m]:
                    j = group_of[t]
                    if j != i and len(chain(j)) > len(best):
                        best = chain(j)
            memo[i] = ["/".join(groups[i])] + best
        return memo[i]

    longest = max((chain(i) for i in range(len(groups))), key=len)
    upward = sorted(
        (a, b) for a, targets in graph.items() for b in targets if layer(a, modules) < layer(b, modules)
    )
    long_modules = sorted(
        (n, len(p.read_text(encoding="utf-8").splitlines())) for n, p in paths.items()
        if len(p.read_text(encoding="utf-8").splitlines()) > 500
    )
    short = lambda m: m.removeprefix("newsletter.") or "newsletter"  # noqa: E731
    print(f"modules: {len(modules)}")
    print(f"import circles: {len(circles)}" + "".join(f"\n  {' <-> '.join(map(short, c))}" for c in circles))
    print(f"upward imports: {len(upward)}" + "".join(f"\n  {short(a)} -> {short(b)}" for a, b in upward))
    print(f"longest import chain: {len(longest)} floors\n  " + " -> ".join(map(short, longest)))
    print(f"modules over 500 lines: {len(long_modules)}" + "".join(f"\n  {short(n)} ({k})" for n, k in long_modules))


if __name__ == "__main__":
    main()
