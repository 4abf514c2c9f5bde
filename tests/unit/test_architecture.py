"""The shape of the Python package, checked statically (nothing under ``backstop/`` is imported):

- the import graph of ``backstop/`` has no cycle (imports go one way: units/orders → model,
  decisions → config, scenario → chain → keeper, stress);
- no module of ``backstop/`` is over 500 lines;
- no tracked file points outside the repository to the old spec folder.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "backstop"
MAX_LINES = 500
#: The old, out-of-repository spec folder (spelled in two pieces so this file does not match itself).
OUTSIDE_SPEC = "../" + "shared/"


def module_name(path: Path, root: Path) -> str:
    """``backstop/chain/abi.py`` → ``backstop.chain.abi``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(root: Path, package: str = "backstop") -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports (anywhere in its body, including inside
    functions). ``from a import b`` points at ``a.b`` when that is a module, else at ``a``."""
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(node, name, is_package)
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in files else source
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in files:  # `import a.b.c` of a non-module c
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (or a self-loop), each as a
    path ``[a, b, ..., a]`` through it, found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_path(graph, set(c)) for c in components]


def _cycle_path(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """One cycle through a strongly connected component, as a readable path."""
    start = min(members)
    path, seen = [start], {start}
    node = start
    while True:
        succs = sorted(s for s in graph[node] if s in members)
        nxt = start if start in succs else next((s for s in succs if s not in seen), succs[0])
        path.append(nxt)
        if nxt == start or nxt in seen:
            return path
        seen.add(nxt)
        node = nxt


def test_the_cycle_finder_finds_a_cycle_and_names_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}, "f": {"f"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["f", "f"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_sees_relative_function_level_and_package_imports(tmp_path):
    pkg = tmp_path / "backstop"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from backstop.sub.b import B\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "sub" / "b.py").write_text("from backstop.sub import a\nB = 1\n")
    (pkg / "c.py").write_text("import backstop.sub.a\nfrom backstop.sub import B\n")
    graph = import_graph(tmp_path)
    assert graph["backstop.sub.a"] == {"backstop.sub.b"}
    assert graph["backstop.c"] == {"backstop.sub.a", "backstop.sub"}
    assert find_cycles(graph) == [["backstop.sub.a", "backstop.sub.b", "backstop.sub.a"]]


def test_backstop_has_no_import_cycle():
    cycles = find_cycles(import_graph(ROOT))
    assert not cycles, "import cycles in backstop/: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_decisions_import_only_units():
    """``backstop.decisions`` is the bottom of the rules (docs/architecture.md): pure, below the
    model, which imports its snapshot type; so it imports nothing of ``backstop`` but ``units``."""
    graph = import_graph(ROOT)
    outside = {
        (name, target)
        for name, targets in graph.items()
        if name.startswith("backstop.decisions")
        for target in targets
        if not target.startswith("backstop.decisions") and target != "backstop.units"
    }
    assert outside == set()


def test_no_backstop_module_is_over_500_lines():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    over = {path: n for path, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=False
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:  # pragma: no cover - not a checkout
        pytest.skip(f"not a git checkout: {err}")
    return [ROOT / name.decode() for name in out.split(b"\0") if name]


def test_no_tracked_file_points_to_the_spec_outside_the_repository():
    marker = OUTSIDE_SPEC.encode()
    offenders = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:  # a binary
            continue
        if marker in data:
            offenders.append(path.relative_to(ROOT).as_posix())
    assert not offenders, f"files referring to {OUTSIDE_SPEC}: {offenders}"
