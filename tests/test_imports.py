"""The project's modules import each other without a circle (issue 12), and the physics core
imports nothing of the project.  Walks the import statements with ast, so it needs no imports.
The manual names every module, script, preset and preset key."""
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


def _manual(page: str) -> str:
    return (REPO / "docs" / page).read_text()


def test_manual_map_names_every_module_and_script():
    """docs/files.md, the repository map, names every module, script and benchmark, every Slurm
    script, every data tool and every CI script."""
    layout = _manual("files.md")
    paths = (sorted(REPO.glob("*.py")) + sorted((REPO / "benchmarks").glob("*"))
             + sorted((REPO / "slurm_scripts").glob("*")) + sorted((REPO / "data").glob("*.py"))
             + sorted((REPO / "data").glob("*.sh")) + sorted((REPO / ".ci").glob("*")))
    paths = [p for p in paths if p.is_file() and p.suffix in (".py", ".sh", ".env", "")]
    expected = {"config.py", "submit_all.sh", "cluster.env", "bench_gpu.py", "run"}
    assert expected <= {p.name for p in paths}
    unnamed = [str(p.relative_to(REPO)) for p in paths
               if f"`{p.name}`" not in layout
               and f"`{p.relative_to(REPO).as_posix()}`" not in layout]
    assert unnamed == [], f"add them to the map in docs/files.md: {unnamed}"


def test_manual_names_every_preset_and_preset_key():
    """docs/local.md names every preset and every key of config.SCHEMA (and of its nested
    tables), so a key added to the code without its line in the manual fails here."""
    from config import ENSEMBLE_SCHEMA, PRESETS, PRIOR_SPACE_SCHEMA, SCHEMA
    page = _manual("local.md")
    missing = ([f"preset {name}" for name in PRESETS if f"`{name}`" not in page]
               + [key for key in SCHEMA if f"| `{key}` |" not in page]
               + [f"ensembles.<label>.{key}" for key in ENSEMBLE_SCHEMA
                  if f"`ensembles.<label>.{key}`" not in page]
               + [f"prior_space.{key}" for key in PRIOR_SPACE_SCHEMA
                  if f"`prior_space.{key}`" not in page])
    assert missing == [], f"add them to docs/local.md (table from config.SCHEMA): {missing}"


def test_every_manual_page_is_in_the_navigation():
    """mkdocs build --strict (CI) fails on a broken link; this catches a page left out of the nav
    without needing mkdocs installed."""
    nav = (REPO / "mkdocs.yml").read_text()
    pages = [p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs").rglob("*.md")]
    assert "method.md" in pages
    assert [p for p in pages if p not in nav] == []
