"""The import graph of models/: layered, without cycles, and without imports of sibling
modules hidden in function bodies (which is how a cycle is usually papered over)."""
import ast
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "models"
MODULES = sorted(path.stem for path in MODELS.glob("*.py"))


def _siblings(node) -> list:
    """The ``models`` modules an import statement names (relative or absolute)."""
    if isinstance(node, ast.ImportFrom):
        if node.level == 1 or (node.level == 0 and node.module and
                               node.module.split(".")[0] == "models"):
            parts = (node.module or "").split(".")[node.level == 0:]
            if parts and parts[0]:  # from .config import X / from models.config import X
                return [parts[0]]
            return [alias.name for alias in node.names]  # from . import zoo
        return []
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[1] for alias in node.names
                if alias.name.startswith("models.")]
    return []


def _parse(name: str) -> ast.Module:
    return ast.parse((MODELS / f"{name}.py").read_text(), filename=f"models/{name}.py")


def import_graph() -> dict:
    """``{module: {sibling modules it imports at the top}}`` (``__init__`` included)."""
    graph = {}
    for name in MODULES:
        graph[name] = {sibling for node in _parse(name).body for sibling in _siblings(node)
                       if sibling != "__init__"} - {name}
        assert graph[name] <= set(MODULES), (name, graph[name] - set(MODULES))
    return graph


def test_the_import_graph_of_models_has_no_cycle():
    graph, done, order = import_graph(), set(), []

    def visit(name, path):
        assert name not in path, "import cycle: " + " -> ".join(path[path.index(name):] + [name])
        if name in done:
            return
        for sibling in sorted(graph[name]):
            visit(sibling, path + [name])
        done.add(name)
        order.append(name)

    for name in MODULES:
        visit(name, [])
    assert sorted(order) == MODULES


def test_no_function_imports_a_sibling_module():
    hidden = []
    for name in MODULES:
        for node in ast.walk(_parse(name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for inner in ast.walk(node):
                    hidden += [f"models/{name}.py:{inner.lineno} imports {sibling}"
                               for sibling in _siblings(inner)]
    assert not hidden, hidden


def test_the_checker_sees_the_imports_it_must():
    graph = import_graph()
    assert {"config", "generative"} <= graph["families"] and "families" not in graph["config"]
    assert "zoo" in graph["__init__"] and "training" in graph["__init__"]
