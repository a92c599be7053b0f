"""Layering, import cycles and module size (docs/architecture.md).

Every module under tdglnre/ and cli/ (installed as ``tdglnre.cli``) is parsed with
:mod:`ast`; imports inside functions count, imports under ``if TYPE_CHECKING:`` do
not (they never run). Relative imports are resolved to module names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Modules every layer may import (they import nothing of the package but each other).
LEAVES = ("tdglnre.errors", "tdglnre.progress", "tdglnre._lazy", "tdglnre._validate")

#: Layer -> layers it may import (docs/architecture.md, the diagram and the table).
ALLOWED = {
    "leaf": {"leaf"},
    "physics": {"physics", "leaf"},
    "instrument": {"physics", "instrument", "leaf"},
    "io": {"physics", "instrument", "io", "leaf"},
    "analysis": {"physics", "instrument", "io", "analysis", "plots", "leaf"},
    "nre": {"physics", "instrument", "io", "analysis", "nre", "plots", "leaf"},
    "plots": {"physics", "plots", "leaf"},
    "workflows": {"physics", "instrument", "io", "analysis", "nre", "plots", "workflows", "leaf", "root"},
    "cli": {"physics", "instrument", "io", "analysis", "nre", "plots", "workflows", "leaf", "root", "cli"},
    "root": {"physics", "instrument", "io", "analysis", "nre", "plots", "workflows", "leaf", "root"},
}

#: Inside nre: role -> roles it may import. ``core`` is the package itself and its shared leaves
#: (settings, tf_setup, atomic); ``net`` (Keras layers, losses) and ``pipeline`` (data) know nothing of
#: each other; ``infer`` (model directories, posteriors, diagnostics) loads what ``net`` registers and
#: reads inputs as ``pipeline`` selects them; ``fit`` (training) sits on top.
NRE_ROLES = {
    "core": {"core"},
    "net": {"core", "net"},
    "pipeline": {"core", "pipeline"},
    "infer": {"core", "net", "pipeline", "infer"},
    "fit": {"core", "net", "pipeline", "infer", "fit"},
}

MAX_LINES = 500
#: Modules allowed past MAX_LINES, with the reason.
LONG_MODULES = {
    "tdglnre/io/ensemble.py": "reader and writer of one HDF5 schema (docs/file-format.md) kept together so the "
                              "schema is checked where it is written",
    "tdglnre/nre/infer/model_io.py": "loading models and their metadata, growing with the measurement-model metadata; "
                               "split pending once that work lands",
}

#: Known layer violations outside this test's reach, each with the fix; the test fails when one disappears
#: (remove it here) or a new one appears.
KNOWN_VIOLATIONS: dict[str, str] = {}


# ------------------------------------------------------------------ parsing
def package_modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is_package) for tdglnre/ and cli/ (as ``tdglnre.cli``)."""
    out: dict[str, tuple[Path, bool]] = {}
    for root, prefix in ((REPO / "tdglnre", "tdglnre"), (REPO / "cli", "tdglnre.cli")):
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = (path, is_package)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, type_checking: bool = False):
    """Import statements that can run: everywhere except the body of ``if TYPE_CHECKING:``.

    With ``type_checking`` those bodies count too (a circle closed only for a
    type checker is still a circle between two modules' designs).
    """
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _known(name: str, modules: dict[str, tuple[Path, bool]]) -> str | None:
    """The longest prefix of ``name`` that is a module of ours (None: third party or stdlib)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(source: str, module: str, is_package: bool,
               modules: dict[str, tuple[Path, bool]], type_checking: bool = False) -> set[tuple[str, str | None]]:
    """(target module, imported name or None) of every import in ``source`` that resolves to one of ``modules``.

    ``from .x import y`` targets ``pkg.x.y`` when that is a module, else ``pkg.x`` with name ``y``.
    """
    found: set[tuple[str, str | None]] = set()
    for node in _import_nodes(ast.parse(source), type_checking):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name, modules)
                if target is not None:
                    found.add((target, None))
            continue
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        for alias in node.names:
            sub = f"{origin}.{alias.name}"
            if sub in modules:
                found.add((sub, None))
                continue
            target = _known(origin, modules)
            if target is not None:
                found.add((target, alias.name))
    return found


def layer(module: str, name: str | None = None) -> str:
    """Layer of a module (``from tdglnre import __version__`` counts as a leaf)."""
    if module in LEAVES or (module == "tdglnre" and name == "__version__"):
        return "leaf"
    if module == "tdglnre":
        return "root"
    return module.split(".")[1]


def nre_role(module: str) -> str:
    """Role of a module of tdglnre.nre (:data:`NRE_ROLES`); its top-level modules are ``core``."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 or (len(parts) == 3 and parts[2] in NRE_ROLES) else "core"


def import_graph(type_checking: bool = False) -> dict[str, set[tuple[str, str | None]]]:
    modules = package_modules()
    return {m: imports_of(path.read_text(encoding="utf-8"), m, is_pkg, modules, type_checking)
            for m, (path, is_pkg) in modules.items()}


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One closed path (first node repeated at the end) per strongly connected component with a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graph is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                components.append(comp)

    for v in sorted(edges):
        if v not in index:
            connect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = min(comp)
        # breadth-first from start back to start inside the component: the shortest closed path
        previous: dict[str, str] = {}
        frontier = [start]
        path = None
        while frontier and path is None:
            nxt = []
            for v in frontier:
                for w in sorted(edges.get(v, ())):
                    if w == start:
                        path = [start]
                        node = v
                        while node != start:
                            path.append(node)
                            node = previous[node]
                        path = [start, *reversed(path[1:]), start]
                        break
                    if w in members and w not in previous and w != start:
                        previous[w] = v
                        nxt.append(w)
                if path is not None:
                    break
            frontier = nxt
        cycles.append(path)
    return cycles


def module_edges(graph: dict[str, set[tuple[str, str | None]]]) -> dict[str, set[str]]:
    """Module -> modules it imports, leaving out a package ``__init__`` importing its own submodules."""
    modules = package_modules()
    edges: dict[str, set[str]] = {}
    for m, targets in graph.items():
        own = modules[m][1]
        edges[m] = {t for t, _ in targets if t != m and not (own and t.startswith(m + "."))}
    return edges


# ------------------------------------------------------------------ the parser itself
def test_parser_resolves_relative_imports_and_skips_type_checking_blocks():
    modules = {"tdglnre": (Path(), True), "tdglnre.errors": (Path(), False), "tdglnre.io": (Path(), True),
               "tdglnre.io.priors": (Path(), False), "tdglnre.physics": (Path(), True),
               "tdglnre.physics.rng": (Path(), False), "tdglnre.nre": (Path(), True),
               "tdglnre.nre.infer.model_io": (Path(), False), "tdglnre.cli": (Path(), True),
               "tdglnre.workflows": (Path(), True), "tdglnre.workflows.train": (Path(), False)}
    source = (
        "from typing import TYPE_CHECKING\n"
        "import numpy as np\n"
        "from ..errors import ConfigError\n"
        "from ..physics.rng import sample_rng\n"
        "from . import priors\n"
        "from .. import __version__\n"
        "if TYPE_CHECKING:\n"
        "    from ..nre.model_io import load_model\n"
        "def f():\n"
        "    import tdglnre.workflows.train\n"
    )
    found = imports_of(source, "tdglnre.io.ensemble", False, modules)
    assert found == {("tdglnre.errors", "ConfigError"), ("tdglnre.physics.rng", "sample_rng"),
                     ("tdglnre.io.priors", None), ("tdglnre", "__version__"),
                     ("tdglnre.workflows.train", None)}
    # in a package __init__, one dot is the package itself; cli/ is installed as tdglnre.cli
    assert imports_of("from .priors import Prior\n", "tdglnre.io", True, modules) == {("tdglnre.io.priors", "Prior")}
    assert imports_of("from ..workflows.train import train\n", "tdglnre.cli.train", False, modules) == {
        ("tdglnre.workflows.train", "train")}
    assert layer("tdglnre", "__version__") == "leaf" and layer("tdglnre.cli.train") == "cli"


def test_cycle_finder_reports_the_closed_path():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


# ------------------------------------------------------------------ the package
def test_every_module_is_found():
    modules = package_modules()
    assert {"tdglnre.physics.rng", "tdglnre.io.priors", "tdglnre.nre.infer.model_io", "tdglnre.cli.main",
            "tdglnre.workflows.train", "tdglnre.plots.posterior", *LEAVES} <= set(modules)
    assert all(layer(m) in ALLOWED for m in modules)


def test_layers_import_only_the_layers_below():
    violations = []
    for module, targets in import_graph().items():
        mine = layer(module)
        for target, name in sorted(targets, key=lambda t: (t[0], t[1] or "")):
            if layer(target, name) not in ALLOWED[mine]:
                violations.append(f"{module} ({mine}) imports {target}{'.' + name if name else ''}")
    assert sorted(violations) == sorted(KNOWN_VIOLATIONS)


def test_nre_roles_import_only_the_roles_below():
    """nre/ is grouped by role (docs/architecture.md): net, pipeline < infer < fit, all over the shared core."""
    assert set(NRE_ROLES) == {"core"} | {p.name for p in (REPO / "tdglnre" / "nre").iterdir()
                                          if (p / "__init__.py").exists()}
    violations = []
    for module, targets in import_graph(type_checking=True).items():
        if not module.startswith("tdglnre.nre"):
            continue
        for target, _ in targets:
            if target.startswith("tdglnre.nre") and nre_role(target) not in NRE_ROLES[nre_role(module)]:
                violations.append(f"{module} ({nre_role(module)}) imports {target} ({nre_role(target)})")
    assert violations == []


def test_no_import_cycle():
    cycles = [" -> ".join(c) for c in find_cycles(module_edges(import_graph()))]
    assert cycles == []


def test_no_cycle_through_type_checking_imports_and_no_upward_annotation():
    """Annotations are design too: no circle closed under ``if TYPE_CHECKING:`` and no layer violation there."""
    graph = import_graph(type_checking=True)
    cycles = [" -> ".join(c) for c in find_cycles(module_edges(graph))]
    assert cycles == []
    upward = [f"{m} imports {t}" for m, targets in graph.items() for t, name in targets
              if layer(t, name) not in ALLOWED[layer(m)]]
    assert upward == []


def test_only_nre_imports_tensorflow_or_keras():
    """docs/architecture.md: nre is the only package that imports TensorFlow/Keras (plots never do)."""
    importers = []
    for module, (path, _) in package_modules().items():
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if node.__class__ is ast.ImportFrom and node.level:
                continue
            if any(n.split(".")[0] in ("tensorflow", "keras") for n in names):
                importers.append(module)
    assert importers and {layer(m) for m in importers} == {"nre"}


def test_import_tdglnre_io_loads_neither_numba_nor_tensorflow():
    import subprocess
    import sys

    code = ("import sys, tdglnre.io\nfrom tdglnre.io import Prior, open_ensemble, load_preset\n"
            "print(sorted(m for m in ('numba', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("root", ["tdglnre", "cli"])
def test_no_module_over_the_line_limit_without_a_reason(root):
    too_long = {}
    for path in sorted((REPO / root).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in LONG_MODULES:
            too_long[rel] = n
    assert too_long == {}


#: Issue 18: at most this many functions of the package may be longer than MAX_FUNCTION_LINES.
MAX_FUNCTION_LINES, MAX_LONG_FUNCTIONS = 80, 5


def test_at_most_five_functions_over_eighty_lines():
    long = {}
    for root in ("tdglnre", "cli"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        long[f"{path.relative_to(REPO).as_posix()}:{node.name}"] = n
    assert len(long) <= MAX_LONG_FUNCTIONS, long


def test_line_limit_allow_list_is_current():
    stale = [rel for rel in LONG_MODULES
             if not (REPO / rel).exists() or len((REPO / rel).read_text(encoding="utf-8").splitlines()) <= MAX_LINES]
    assert stale == []

# ------------------------------------------------------------------ workflows hold no numerics
#: What a workflow may take from NumPy: building, converting and inspecting arrays, dtypes, checks of
#: finiteness/complexness, and .npy/.npz files. Everything else (np.fft, np.linalg, np.random,
#: np.histogram, np.mean, np.argmax, np.linspace, ...) is numerics and belongs in a layer below.
WORKFLOW_NUMPY = {
    "array", "asarray", "ascontiguousarray", "zeros", "ones", "full", "empty", "arange", "r_", "concatenate",
    "stack", "ravel", "shape", "ndarray", "dtype", "generic", "integer", "floating", "bool_", "float32",
    "float64", "int32", "int64", "iscomplexobj", "isfinite", "load", "save", "savez", "savez_compressed",
}
#: ``math`` functions a workflow may call (argument checks).
WORKFLOW_MATH = {"isfinite", "isnan", "isinf"}


def numerics_in(source: str) -> list[str]:
    """Numerical code in a workflow module's ``source``: one line per finding (``line: what``).

    Flags SciPy imports; NumPy submodules and NumPy names outside :data:`WORKFLOW_NUMPY` (through
    ``import numpy as np`` or ``from numpy import ...``); ``math`` functions outside
    :data:`WORKFLOW_MATH`; any method call with an ``axis=`` keyword (a reduction over an array);
    and the matrix product ``@``.
    """
    tree = ast.parse(source)
    found: list[str] = []
    numpy_names: set[str] = set()
    math_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                if top == "scipy":
                    found.append(f"{node.lineno}: import {a.name}")
                elif a.name == "numpy":
                    numpy_names.add(a.asname or "numpy")
                elif top == "numpy":
                    found.append(f"{node.lineno}: import {a.name}")
                elif a.name == "math":
                    math_names.add(a.asname or "math")
        elif isinstance(node, ast.ImportFrom) and not node.level:
            top = (node.module or "").split(".")[0]
            if top == "scipy" or (top == "numpy" and node.module != "numpy"):
                found.append(f"{node.lineno}: from {node.module} import ...")
            elif node.module == "numpy":
                found += [f"{node.lineno}: from numpy import {a.name}" for a in node.names
                          if a.name not in WORKFLOW_NUMPY]
            elif node.module == "math":
                found += [f"{node.lineno}: from math import {a.name}" for a in node.names
                          if a.name not in WORKFLOW_MATH]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in numpy_names and node.attr not in WORKFLOW_NUMPY:
                found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
            elif node.value.id in math_names and node.attr not in WORKFLOW_MATH:
                found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and any(
                k.arg == "axis" for k in node.keywords):
            found.append(f"{node.lineno}: .{node.func.attr}(axis=...)")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            found.append(f"{node.lineno}: @")
    return sorted(set(found), key=lambda f: (int(f.split(":")[0]), f))


def test_numerics_finder_flags_what_it_should():
    source = (
        "import math\nimport numpy as np\nfrom scipy import ndimage\nfrom numpy.fft import fft2\n"
        "from numpy import histogram, asarray\n"
        "a = np.asarray([1.0]); b = np.zeros(3); ok = math.isfinite(1.0) and np.isfinite(a).all()\n"
        "c = np.fft.rfft2(a); d = np.linalg.norm(a); e = np.histogram(a); f = a.mean(axis=0); g = a @ a\n"
        "h = math.log(2.0); r = np.random.default_rng(0)\n"
    )
    assert numerics_in(source) == [
        "3: from scipy import ...", "4: from numpy.fft import ...", "5: from numpy import histogram",
        "7: .mean(axis=...)", "7: @", "7: np.fft", "7: np.histogram", "7: np.linalg", "8: math.log",
        "8: np.random"]


def test_workflows_hold_no_numerics():
    """docs/architecture.md: workflows orchestrate; what they compute lives in physics, instrument, analysis or nre."""
    found = []
    for path in sorted((REPO / "tdglnre" / "workflows").rglob("*.py")):
        found += [f"{path.relative_to(REPO).as_posix()}:{f}" for f in numerics_in(path.read_text(encoding="utf-8"))]
    assert found == []
