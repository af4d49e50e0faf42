"""The package's layers, read from the source: who may import whom, and no import cycles.

Every import counts, wherever it is written: at the top of a module, inside a function (gitexp
imports much lazily to keep `import gitexp` cheap) and under `if TYPE_CHECKING:`. The rules
are the ones each subpackage's docstring states; each rule is also shown to catch a breach,
on a small package written for the purpose.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gitexp"

# Lowest first: a module may import its own layer and those before it, never one after it.
# "base" is the handful of top-level modules that every layer shares.
LAYERS = ("base", "git", "store", "tracking", "ops", "mlflow", "importer", "integrations", "views", "ui", "cli")
BASE_MODULES = {"gitexp.errors", "gitexp.warn", "gitexp.text", "gitexp.threads"}
# The public facade (gitexp/__init__.py) reaches every layer lazily and python -m gitexp runs the
# CLI; gitexp.tensorboard re-exports the integrations' SummaryWriter (a one-line import switch). They
# sit above all layers. Any module may import gitexp.__version__ from the facade.
FACADE = {"gitexp", "gitexp.__main__", "gitexp.tensorboard"}
GIT_LIBRARIES = {"pygit2"}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(root, path): path for path in sorted(root.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the module, resolved to a module of *known*
    where the name is one (`from gitexp.store import runs` imports gitexp.store.runs)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in known else base), node.lineno


def layer_of(module: str) -> str | None:
    if module in BASE_MODULES:
        return "base"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    return None


def breaches(root: Path) -> list[str]:
    """Every import that breaks a rule, as 'module:line: what'."""
    found = modules(root)
    known = set(found)
    out = []
    for name, path in found.items():
        if name in FACADE:
            continue
        mine = layer_of(name)
        if mine is None:
            out.append(f"{name}: belongs to no layer (put it in one of {', '.join(LAYERS[1:])})")
            continue
        for target, line in imports(name, path, known):
            top = target.split(".")[0]
            if top in GIT_LIBRARIES and mine != "git":
                out.append(f"{name}:{line}: imports {target}; only the git layer may")
            if top != root.name or target == root.name:
                continue  # another package, or `from gitexp import __version__`
            theirs = layer_of(target)
            if theirs is None:
                out.append(f"{name}:{line}: imports {target}, which belongs to no layer")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                out.append(f"{name}:{line}: the {mine} layer imports {target} from the {theirs} layer above it")
    return out


def cycles(root: Path) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's algorithm)."""
    found = modules(root)
    known = set(found)
    graph = {name: sorted({t for t, _ in imports(name, path, known) if t in known and t != name})
             for name, path in found.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_no_layer_imports_one_above_it_and_only_the_git_layer_imports_pygit2() -> None:
    assert breaches(PACKAGE) == []


def test_no_import_cycles_even_through_function_local_imports() -> None:
    assert cycles(PACKAGE) == []


def test_every_subpackage_says_what_it_owns_and_may_import() -> None:
    for layer in LAYERS[1:]:
        init = PACKAGE / layer / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc, f"{init} needs a docstring saying what it owns and what it may import"


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A package laid out like gitexp, clean until a test adds a breach."""
    root = tmp_path / "gitexp"
    files = {
        "__init__.py": "from gitexp.errors import GitexpError\n",
        "errors.py": "class GitexpError(Exception): ...\n",
        "git/__init__.py": '"""git"""\n', "git/repo.py": "import pygit2\nfrom gitexp.errors import GitexpError\n",
        "store/__init__.py": '"""store"""\n', "store/runs.py": "from gitexp.git import repo\n",
        "views/__init__.py": '"""views"""\n', "views/table.py": "from gitexp.store.runs import x\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert breaches(root) == [] and cycles(root) == []
    return root


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text))


def test_the_rules_catch_an_import_of_a_layer_above(toy: Path) -> None:
    write(toy, "store/runs.py", """
        from gitexp.git import repo

        def show():
            from gitexp.views.table import render  # a function-local import counts too
    """)
    assert breaches(toy) == ["gitexp.store.runs:5: the store layer imports gitexp.views.table from the views layer "
                             "above it"]


def test_the_rules_catch_pygit2_outside_the_git_layer(toy: Path) -> None:
    write(toy, "store/runs.py", """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from pygit2 import Repository
    """)
    assert breaches(toy) == ["gitexp.store.runs:4: imports pygit2; only the git layer may"]


def test_the_rules_catch_a_module_outside_every_layer(toy: Path) -> None:
    write(toy, "stray.py", "x = 1\n")
    assert breaches(toy) == ["gitexp.stray: belongs to no layer (put it in one of git, store, tracking, ops, "
                             "mlflow, importer, integrations, views, ui, cli)"]


def test_the_cycle_check_sees_through_function_local_and_relative_imports(toy: Path) -> None:
    write(toy, "store/state.py", """
        def later():
            from . import runs
    """)
    write(toy, "store/runs.py", "from gitexp.store import state\n")
    assert cycles(toy) == [["gitexp.store.runs", "gitexp.store.state"]]
