"""The house: no import cycles among skft's modules, and few modules directly in ``skft/``.

Imports are read from the source (``ast``), as Python runs them when a module is imported:
the module-level ones (``import`` inside functions and ``if TYPE_CHECKING:`` run later or
never). ``from .pkg import name`` depends on ``pkg/__init__.py``, and on ``pkg/name.py``
when that is a module; a module's own packages (``skft`` for ``skft.plugins``) are
initialised before it, so importing from them adds no edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import skft

ROOT = Path(skft.__file__).resolve().parent
MAX_TOP_LEVEL_MODULES = 12  # issue 25: every other module lives in a subpackage


def module_name(path: Path) -> str:
    parts = ["skft", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def _run_at_import(tree: ast.Module):
    """The import statements a module runs when it is imported."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from _run_at_import(ast.Module(body=node.body + node.orelse, type_ignores=[]))
        elif isinstance(node, ast.Try):
            yield from _run_at_import(ast.Module(body=node.body, type_ignores=[]))


def edges(known: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _run_at_import(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            for target in targets:
                # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:i])
                    # a module's own packages ran their __init__ before it: no edge
                    if prefix in known and not (name + ".").startswith(prefix + "."):
                        graph[name].add(prefix)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(edges(modules())) == []


def test_the_checker_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_a_package_init_that_imports_back_is_a_cycle(tmp_path):
    # the cycle this test was written for: skft/params/__init__ re-exporting checks, which
    # imports augment, which imports skft.params.plan (through the package's __init__)
    tree = ast.parse("from .params.plan import x\n")
    known = {"skft.augment": tmp_path / "augment.py", "skft.params": tmp_path / "p/__init__.py"}
    known["skft.params.plan"] = tmp_path / "p/plan.py"
    for name, path in known.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ast.unparse(tree) if name == "skft.augment" else "")
    known["skft.params"].write_text("from ..augment import y\n")
    graph = edges(known)
    assert "skft.params" in graph["skft.augment"] and "skft.params.plan" in graph["skft.augment"]


def test_few_modules_directly_in_skft():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


#: The estimator's own code: its classes and the mixin of its speed paths.
ESTIMATOR_MODULES = {"skft.base", "skft.estimators", "skft.training.speed"}
#: The names other modules give an estimator (skorch's callbacks: ``net``).
ESTIMATOR_NAMES = {"estimator", "est", "net", "clf", "reg", "model"}


def writes_to_an_estimator(tree: ast.AST) -> list[str]:
    """``estimator.x = ...``, ``setattr(net, ...)``, ``net.__dict__[...] = ...`` and
    ``net.__dict__.update(...)`` in ``tree``, as source lines."""

    def names_estimator(node: ast.AST) -> bool:
        while isinstance(node, ast.Attribute) and node.attr == "__dict__":
            node = node.value
        if isinstance(node, ast.Attribute) and node.attr == "net":  # self.net in a callback
            return True
        return isinstance(node, ast.Name) and node.id in ESTIMATOR_NAMES

    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("setattr", "delattr") and node.args:
                targets = [ast.Attribute(value=node.args[0], attr="?")]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if node.func.attr in ("update", "pop", "setdefault") and (
                isinstance(owner, ast.Attribute) and owner.attr == "__dict__"
            ):
                targets = [ast.Attribute(value=owner, attr="?")]
        for target in targets:
            for part in ast.walk(target) if isinstance(target, ast.Tuple) else [target]:
                if isinstance(part, ast.Subscript):
                    part = part.value
                if isinstance(part, ast.Attribute) and names_estimator(part.value):
                    found.append(ast.unparse(node).splitlines()[0])
    return found


def test_only_the_estimator_sets_its_attributes():
    # issue 25: the state of a fit has one owner; other modules read it or call its methods
    writes = {
        name: found
        for name, path in modules().items()
        if name not in ESTIMATOR_MODULES
        and (found := writes_to_an_estimator(ast.parse(path.read_text())))
    }
    assert writes == {}


def test_the_writes_checker_sees_each_kind_of_write():
    source = (
        "estimator.fit_plan_ = 1\n"
        "setattr(net, name, 2)\n"
        "self.net.schedule_span_ = 3\n"
        "net.__dict__['x'] = 4\n"
        "net.__dict__.update(held)\n"
        "a, estimator.pretrained = 1, 2\n"
        "del net.extra_\n"
        "other.x = 5\n"  # not an estimator
        "net.module_.apply(x)\n"  # a call, not a write
    )
    assert len(writes_to_an_estimator(ast.parse(source))) == 7
