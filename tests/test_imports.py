"""The project's modules import each other without a circle (issue 12), and the physics core
imports nothing of the project.  Walks the import statements with ast, so it needs no imports."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def project_imports() -> dict[str, set[str]]:
    """module name -> the project modules it imports (top-level .py files and benchmarks/)."""
    files = sorted(REPO.glob("*.py")) + sorted((REPO / "benchmarks").glob("*.py"))
    modules = {p.stem: p for p in files}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
        graph[name] = found & set(modules) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle [a, b, ..., a] of ``graph``, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle():
    graph = project_imports()
    assert {"training", "noise_files", "sigma_model_utils"} <= set(graph)    # the walk sees them
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_physics_core_and_devices_import_nothing_of_the_project():
    graph = project_imports()
    assert graph["sigma_model_utils"] == set()
    assert graph["devices"] == set()


def test_readme_map_names_every_module():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Repository layout"):]
    unnamed = ([p.name for p in sorted(REPO.glob("*.py")) if p.name not in layout]
               + [p.name for p in sorted((REPO / "benchmarks").glob("*.py")) if p.stem not in layout])
    assert unnamed == [], f"add them to the README's repository layout: {unnamed}"
