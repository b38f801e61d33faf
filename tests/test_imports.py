"""The project's modules import each other without a circle (issue 12), the physics core and the
network module import nothing of the project, and each stage's file format is opened by its owner
module only (issue 21).  Walks the code with ast, so it needs no imports.  The manual names every
module, script, preset and preset key."""
import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def project_modules() -> dict[str, ast.Module]:
    """module name -> its syntax tree (top-level .py files and benchmarks/)."""
    files = sorted(REPO.glob("*.py")) + sorted((REPO / "benchmarks").glob("*.py"))
    return {p.stem: ast.parse(p.read_text(), filename=str(p)) for p in files}


def project_imports() -> dict[str, set[str]]:
    """module name -> the project modules it imports."""
    modules = project_modules()
    graph = {}
    for name, tree in modules.items():
        found = set()
        for node in ast.walk(tree):
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


def test_physics_core_devices_network_and_roles_import_nothing_of_the_project():
    graph = project_imports()
    assert graph["sigma_model_utils"] == set()
    assert graph["devices"] == set()
    assert graph["pytorch_models_t32"] == set()     # it owns its architecture table
    assert graph["roles"] == set()


# --- who opens which files -------------------------------------------------------------------------
# Each stage's file format (method §10) and the one module that writes and reads it.
FORMAT_OWNERS = {
    "noise file": "noise_files",
    "training file": "training_sets",
    "checkpoint, training state (.pth) and history (.csv)": "checkpoints",
    "mock file": "mocks",
    "prediction file": "prediction_files",
    "result files (budget CSV, JSON, HDF5)": "result_files",
    "calibration file": "calibration_files",
}
# The other modules that open files, and what: none of them a stage's file.
OWN_FILES = {
    "io_utils": "the helpers the owners open files with (open_h5, save_torch, recorded_fingerprint), locks, hashes",
    "correlator_files": "users' correlator files, read",
    "run_etas_example": "its comparison with the two-state fit and the peers (results/hpqcd_etas_fit_comparison.*,"
                        " results/hpqcd_etas_peers/)",
    "compare_methods": "its comparison of the methods (parts, tables and pictures under --out)",
    "validate_coverage": "its coverage study (results/validation/)",
    "bench_gpu": "/proc/cpuinfo, read",
    "bench_user_data": "/proc/cpuinfo, read; its synthetic correlators (users' HDF5 layout), written",
    "run_pipeline": "the logs of the tasks it runs side by side (pipeline_logs/), written and tailed",
    "settings": "the network module's source, read for its architecture table without importing torch",
}
# What opens a file: h5py.File, json.dump/load, pandas' read_csv and DataFrame.to_csv, torch.save/load,
# a Path's read_text/write_text (and bytes), open, and the io_utils helpers that open the path given.
OPENING_CALLS = {("h5py", "File"), ("json", "dump"), ("json", "load"), ("pd", "read_csv"),
                 ("torch", "save"), ("torch", "load")}
OPENING_METHODS = {"to_csv", "read_text", "write_text", "read_bytes", "write_bytes"}
OPENING_FUNCTIONS = {"open", "open_h5", "save_torch", "recorded_fingerprint"}
# The Config methods that name a stage's file (paths.py).
STAGE_PATHS = {"training_file", "checkpoint", "state_path", "history_path", "mock_file", "prediction_file",
               "results_file"}


def opens_a_file(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr in OPENING_METHODS or (isinstance(func.value, ast.Name)
                                                and (func.value.id, func.attr) in OPENING_CALLS)
    return isinstance(func, ast.Name) and func.id in OPENING_FUNCTIONS


def opening_functions(tree: ast.Module) -> dict[str, set[str]]:
    """name of each function (or <module>) of ``tree`` that opens a file -> the attributes it names."""
    scopes = [("<module>", tree)] + [(node.name, node) for node in ast.walk(tree)
                                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    found = {}
    for name, scope in scopes:
        nodes = list(ast.walk(scope)) if name != "<module>" else [
            n for stmt in scope.body if not isinstance(stmt, (ast.FunctionDef, ast.ClassDef))
            for n in ast.walk(stmt)]
        if any(opens_a_file(n) for n in nodes):
            found[name] = {n.attr for n in nodes if isinstance(n, ast.Attribute)}
    return found


def test_the_opening_finder_finds_a_planted_raw_read():
    planted = ast.parse("def peek(cfg):\n    with h5py.File(cfg.prediction_file('O3', 'Nmax', 0.44)) as h5:\n"
                        "        return h5['input_samples'][...]\n"
                        "def fine(cfg, b):\n    return b.prediction_file\n")
    assert list(opening_functions(planted)) == ["peek"]
    assert "prediction_file" in opening_functions(planted)["peek"]
    assert not opening_functions(ast.parse("x = json.dumps({})\n"))


def test_only_the_owners_and_the_listed_modules_open_files():
    opening = {name for name, tree in project_modules().items() if opening_functions(tree)}
    assert {"prediction_files", "result_files", "training_sets", "checkpoints"} <= opening   # the walk sees them
    assert opening == set(FORMAT_OWNERS.values()) | set(OWN_FILES), (
        "a module opens files that is neither a format's owner nor listed with its own files: "
        f"{sorted(opening - set(FORMAT_OWNERS.values()) - set(OWN_FILES))}; unused entries: "
        f"{sorted(set(FORMAT_OWNERS.values()) | set(OWN_FILES) - opening)}")


def test_no_module_but_the_owners_opens_a_stage_file():
    """Outside the owners, no function that opens a file names a stage file's path."""
    owners = set(FORMAT_OWNERS.values())
    found = [f"{module}.{function}: {sorted(names & STAGE_PATHS)}"
             for module, tree in project_modules().items() if module not in owners
             for function, names in opening_functions(tree).items() if names & STAGE_PATHS]
    assert found == [], f"read and write stage files through their owner modules: {found}"


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
    """docs/local.md names every preset and every key of settings.SCHEMA (and of its nested
    tables), so a key added to the code without its line in the manual fails here."""
    from config import PRESETS
    from settings import ENSEMBLE_SCHEMA, PRIOR_SPACE_SCHEMA, SCHEMA
    page = _manual("local.md")
    missing = ([f"preset {name}" for name in PRESETS if f"`{name}`" not in page]
               + [key for key in SCHEMA if f"| `{key}` |" not in page]
               + [f"ensembles.<label>.{key}" for key in ENSEMBLE_SCHEMA
                  if f"`ensembles.<label>.{key}`" not in page]
               + [f"prior_space.{key}" for key in PRIOR_SPACE_SCHEMA
                  if f"`prior_space.{key}`" not in page])
    assert missing == [], f"add them to docs/local.md (table from settings.SCHEMA): {missing}"


def test_every_manual_page_is_in_the_navigation():
    """mkdocs build --strict (CI) fails on a broken link; this catches a page left out of the nav
    without needing mkdocs installed."""
    nav = (REPO / "mkdocs.yml").read_text()
    pages = [p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs").rglob("*.md")]
    assert "method.md" in pages
    assert [p for p in pages if p not in nav] == []


def test_settings_read_the_network_modules_architectures_without_torch():
    """settings.py takes the architecture names from the network module's own table, and neither it
    nor config.py imports the network module (torch would make every `python config.py` slow)."""
    import settings
    from pytorch_models_t32 import ARCHITECTURES
    assert settings.ARCHITECTURES == tuple(ARCHITECTURES)
    graph = project_imports()
    assert "pytorch_models_t32" not in graph["settings"] | graph["config"] | graph["tasks"] | graph["paths"]



def test_the_analysis_runs_without_torch():
    """The analysis scripts (run on a laptop, after the cluster) read prediction and calibration files
    and never import torch: the interval networks' layout is in interval_outputs.py."""
    scripts = ["analysis", "analyze_O3_mock_sigma", "analyze_delta_tanh_mock", "analyze_user_data"]
    code = f"import sys; import {', '.join(scripts)}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    planted = subprocess.run([sys.executable, "-c", code.replace("import sys;", "import sys, interval_networks;")],
                             cwd=REPO, capture_output=True, text=True, check=True)
    assert planted.stdout.strip() == "True"            # the check sees torch when it is imported


# a command word python, python3, python3.11 where a shell statement starts (after optional
# VAR=value, exec, timeout N, nice -n N, env, command)
_STATEMENT = r"(?:^|[;&|(`!]|\$\(|\b(?:then|do|if|else|elif|while|until)\b)\s*"
_PREFIXES = r"(?:[A-Za-z_]\w*=\S*\s+|exec\s+|timeout\s+\S+\s+|nice\s+(?:-n\s*-?\d+\s+)?|env\s+|command\s+)*"
_PYTHON_BY_NAME = re.compile(_STATEMENT + _PREFIXES + r"python[\d.]*(?=\s|$|[;)|&])")
_SUBPROCESS_BY_NAME = re.compile(r"(?:subprocess\.\w+|Popen)\(\s*\[\s*[\"']python[\d.]*[\"']")


def python_by_name(path: Path) -> list[tuple[int, str]]:
    """The lines of a shell script (or Makefile) or Python file that start an interpreter by its
    name (whichever python is first on PATH) instead of the one running (sys.executable) or the
    one given ($PYTHON, $SPECTRAL_PYTHON): [(line number, line)]."""
    found = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if path.suffix == ".py":
            hit = _SUBPROCESS_BY_NAME.search(line)
        else:
            code = re.sub(r"(^|\s)#.*", "", line)                       # comments say what they like
            code = re.sub(r"\"(?:[^\"\\$]|\\.|\$(?!\())*\"|'[^']*'", "''", code)   # and strings without $(
            hit = _PYTHON_BY_NAME.search(code)
        if hit:
            found.append((n, line.strip()))
    return found


def test_python_by_name_finds_what_it_must(tmp_path):
    """The check below, tested: each planted line is found, none of the clean ones."""
    planted = ["python -m pip download x", "if ! python3 -m pip install y; then", 'out=$(python "$f")',
               "timeout 90 python3.11 run.py", "X=1 exec python z.py", "a && python b.py", 'x="$(python3 y.py)"',
               "subprocess.run([" + '"python", "x.py"])']
    clean = ['"$python" -m pip download x', 'echo "error: python interpreter not found"',
             "# python x.py in a comment", '"$PYTHON" -c "import torch"', "PYTHON ?= python3",
             'subprocess.run([sys.executable, "x.py"])', "python=${SPECTRAL_PYTHON:-python3}",
             'step "make test BASE_PYTHON=$B (then python -m pytest -q)"']
    for suffix in (".sh", ".py"):
        path = tmp_path / f"probe{suffix}"
        lines = [line for line in planted + clean if line.startswith("subprocess") == (suffix == ".py")]
        path.write_text("\n".join(lines) + "\n")
        assert [line for _, line in python_by_name(path)] == [line for line in lines if line in planted]


def test_no_script_starts_python_by_name():
    """Every shell script, the Makefile and every Python file start Python with the interpreter
    given to them (`make test PYTHON=...`, SPECTRAL_PYTHON) or running them (sys.executable): a
    bare `python` may be another interpreter, without the packages (issue: data/fetch_hpqcd_etas.sh
    ran make_noise_file.py with the first python on PATH)."""
    paths = [p for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts
             and "site" not in p.parts and (p.suffix in (".sh", ".py", ".env") or p.name in ("Makefile", "run"))]
    assert {"fetch_hpqcd_etas.sh", "common.sh", "run", "Makefile", "run_etas_example.py"} <= {p.name for p in paths}
    found = [f"{p.relative_to(REPO)}:{n}: {line}" for p in sorted(paths) for n, line in python_by_name(p)]
    assert found == [], f"start the interpreter given or running, not python by name: {found}"
