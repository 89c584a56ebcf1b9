"""The import contract of pi_facegate's rooms, and proof that each check of it can fail.

Three checks, each run on the real tree and on a throw-away copy of the package with a
violation planted in it (a check that cannot fail proves nothing):

* the import-linter contracts in ``.importlinter`` (``lint-imports``);
* no import cycle between modules, on grimp's graph of every import (lazy ones inside
  functions and ``TYPE_CHECKING`` ones included);
* ``pi_facegate.core`` is pure: an ``ast`` walk allows only the standard library, numpy,
  cv2, ``pi_facegate.exc`` and ``pi_facegate.core`` (a forbidden contract can only list what
  is forbidden, so it cannot say "nothing else").

The copies are analysed in subprocesses with the copy first on ``PYTHONPATH`` (this process
has imported the real ``pi_facegate`` already, so grimp would find that one here), and every
planted module's name only exists in the copy, so seeing it named proves the copy was read.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pi_facegate"
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

#: contract ids in .importlinter; the real tree must keep them all
CONTRACTS = (
    "core-is-pure",
    "libraries-off-the-pi-hardware",
    "devtools-only-from-cli",
    "rooms-acyclic",
)

#: what pi_facegate.core may import besides the standard library and itself
CORE_EXTERNALS = frozenset({"numpy", "cv2"})
#: standard-library modules core must not use all the same (storage's business)
CORE_FORBIDDEN_STDLIB = frozenset({"sqlite3"})

# --- running the analyses on a tree -------------------------------------------------------


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def lint_imports(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the ``pi_facegate`` under ``tree``, with ``tree/.importlinter``."""
    # a failure, not a skip: a contract that is never checked would pass in silence
    assert LINT_IMPORTS.exists(), "import-linter is not installed: pip install -e '.[dev]'"
    args = [str(LINT_IMPORTS), "--no-cache"]
    for contract in contracts:
        args += ["--contract", contract]
    args.append(str(tree / ".importlinter"))
    return subprocess.run(
        args, cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=60
    )


_GRAPH_SCRIPT = """
import importlib.util, json, sys
import grimp
spec = importlib.util.find_spec(sys.argv[1])
graph = grimp.build_graph(sys.argv[1], cache_dir=None)
edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
print(json.dumps({"origin": spec.origin, "edges": edges}))
"""


def import_graph(tree: Path) -> dict[str, list[str]]:
    """grimp's graph of ``tree/pi_facegate`` (importer -> modules it imports, internal only)."""
    proc = subprocess.run(
        [sys.executable, "-c", _GRAPH_SCRIPT, PACKAGE],
        cwd=tree,
        env=_env(tree),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(proc.stdout)
    assert Path(result["origin"]).resolve() == (tree / PACKAGE / "__init__.py").resolve(), (
        f"grimp analysed {result['origin']}, not the tree under {tree}"
    )
    return result["edges"]


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[tuple[str, ...]]:
    """The import cycles of a graph: its strongly connected components of more than one
    module, and modules importing themselves (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[tuple[str, ...]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in edges.get(node, ()):
                        cycles.append(tuple(sorted(component)))
    return sorted(cycles)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterable[tuple[int, str]]:
    """(line, absolute module name) of every import in a module's syntax tree, wherever it
    stands, plus ``importlib.import_module`` / ``__import__`` calls with a literal name."""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            # `from pi_facegate import vision` imports a room; `from pi_facegate import
            # __version__` the root package: judge name.alias, the most specific it can be
            for alias in node.names:
                yield node.lineno, f"{name}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.lineno, node.args[0].value


def _core_may_import(name: str) -> bool:
    top = name.split(".")[0]
    if top == PACKAGE:
        return name.startswith((f"{PACKAGE}.exc.", f"{PACKAGE}.core.")) or name in (
            f"{PACKAGE}.exc",
            f"{PACKAGE}.core",
        )
    if top in CORE_FORBIDDEN_STDLIB:
        return False
    return top in CORE_EXTERNALS or top == "__future__" or top in sys.stdlib_module_names


def core_imports(package_dir: Path) -> list[tuple[str, int, str]]:
    """(module, line, imported name) for every import in ``package_dir/core``."""
    found = []
    core = package_dir / "core"
    files = sorted(core.rglob("*.py"))
    assert files, f"no modules under {core}"
    for path in files:
        rel = path.relative_to(package_dir.parent).with_suffix("")
        is_package = rel.name == "__init__"
        module = ".".join(rel.parent.parts if is_package else rel.parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [(module, line, name) for line, name in _imported_names(tree, module, is_package)]
    return found


def core_impurities(package_dir: Path) -> list[str]:
    """``module:line imports name`` for every import in ``package_dir/core`` that core may
    not make."""
    return [
        f"{module}:{line} imports {name}"
        for module, line, name in core_imports(package_dir)
        if not _core_may_import(name)
    ]


def copy_tree(tmp_path: Path, plant: Mapping[str, str]) -> Path:
    """A copy of the package and its .importlinter under ``tmp_path``, with the modules in
    ``plant`` (path relative to the package -> source) added."""
    shutil.copytree(
        ROOT / PACKAGE,
        tmp_path / PACKAGE,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    shutil.copy2(CONFIG, tmp_path / ".importlinter")
    for rel, source in plant.items():
        (tmp_path / PACKAGE / rel).write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


# --- the real tree ------------------------------------------------------------------------


def test_contracts_are_kept() -> None:
    proc = lint_imports(ROOT)
    out = proc.stdout + proc.stderr
    assert "Analyzed" in out and int(out.split("Analyzed ")[1].split()[0]) > 50, out
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out, out
    assert proc.returncode == 0, out


def test_contract_file_lists_every_contract() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    declared = [
        line.split(":", 2)[2].rstrip("]")
        for line in text.splitlines()
        if line.startswith("[importlinter:contract:")
    ]
    assert sorted(declared) == sorted(CONTRACTS)


def test_no_import_cycles() -> None:
    edges = import_graph(ROOT)
    assert len(edges) > 50 and sum(map(len, edges.values())) > 100, "graph implausibly small"
    assert "pi_facegate.core.matcher" in edges["pi_facegate.storage.gallery"]
    cycles = find_cycles(edges)
    assert not cycles, "import cycles (lazy imports count):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )


def test_core_imports_only_stdlib_numpy_cv2_exc_and_core() -> None:
    seen = {name for _, _, name in core_imports(ROOT / PACKAGE)}
    assert {"numpy", "cv2", "pi_facegate.exc.ModelError", "pi_facegate.core.faces.Face"} <= seen
    assert core_impurities(ROOT / PACKAGE) == []


# --- proof that each check can fail ---------------------------------------------------------

_VIOLATIONS = {
    # a third-party Pi package, at module level
    "core/_violation_gpio.py": "import gpiozero\n",
    # the daemon, lazily inside a function
    "core/_violation_daemon.py": """
        def start():
            from pi_facegate.daemon import service
            return service
        """,
    # Pi hardware from storage, type-only
    "storage/_violation_systemd.py": """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import systemd.daemon
        """,
    # devtools from the daemon
    "daemon/_violation_devtools.py": "from pi_facegate.devtools import evaluation\n",
    # a cycle between two rooms that may otherwise import each other freely
    "door/_violation_cycle.py": "from pi_facegate.camera import _violation_cycle\n",
    "camera/_violation_cycle.py": """
        def back():
            import pi_facegate.door._violation_cycle
        """,
}


@pytest.fixture(scope="module")
def violated_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_tree(tmp_path_factory.mktemp("violated"), _VIOLATIONS)


#: per contract, what its report must name once the violations are planted: every entry,
#: in one of its spellings (the planted modules exist only in the copy, so naming them
#: proves the copy was the tree analysed)
_EXPECTED_BREAKS = {
    "core-is-pure": [
        ("pi_facegate.core._violation_gpio -> gpiozero",),
        ("pi_facegate.core._violation_daemon -> pi_facegate.daemon.service",),
    ],
    "libraries-off-the-pi-hardware": [
        ("pi_facegate.core._violation_gpio -> gpiozero",),
        ("pi_facegate.core._violation_daemon -> pi_facegate.daemon.service",),
        ("pi_facegate.storage._violation_systemd -> systemd (l.4)",),
    ],
    "devtools-only-from-cli": [
        ("pi_facegate.daemon._violation_devtools -> pi_facegate.devtools.evaluation",),
    ],
    # import-linter names one dependency whose removal breaks the cycle, either way round
    "rooms-acyclic": [(".door -> .camera", ".camera -> .door")],
}


def test_every_contract_has_a_planted_violation() -> None:
    assert sorted(_EXPECTED_BREAKS) == sorted(CONTRACTS)


@pytest.mark.parametrize("contract", sorted(_EXPECTED_BREAKS))
def test_a_planted_violation_breaks_the_contract(violated_tree: Path, contract: str) -> None:
    proc = lint_imports(violated_tree, contract)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Contracts: 0 kept, 1 broken." in out, out
    missing = [
        spellings
        for spellings in _EXPECTED_BREAKS[contract]
        if not any(s in out for s in spellings)
    ]
    assert not missing, f"{contract} did not name {missing}:\n{out}"


def test_a_planted_cycle_is_found(violated_tree: Path) -> None:
    cycles = find_cycles(import_graph(violated_tree))
    assert ("pi_facegate.camera._violation_cycle", "pi_facegate.door._violation_cycle") in cycles


def test_find_cycles_on_small_graphs() -> None:
    assert find_cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [("a", "b", "c")]
    assert find_cycles({"a": ["a"]}) == [("a",)]
    assert find_cycles({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"]}) == [
        ("a", "b"),
        ("c", "d"),
    ]


def test_core_purity_check_can_fail(tmp_path: Path) -> None:
    tree = copy_tree(
        tmp_path,
        {
            "core/_violation_yaml.py": """
                import json

                import numpy as np
                from pi_facegate.exc import ConfigError
                from pi_facegate.core.faces import Face


                def load(text):
                    import yaml
                    return yaml.safe_load(text)
                """,
            "core/_violation_rooms.py": """
                import sqlite3
                import importlib
                from pi_facegate import paths
                from .. import vision
                from ..storage.gallery import Gallery
                importlib.import_module("pydantic")
                """,
        },
    )
    found = core_impurities(tree / PACKAGE)
    planted = [f for f in found if "._violation_" in f]
    assert planted == [
        "pi_facegate.core._violation_rooms:2 imports sqlite3",
        "pi_facegate.core._violation_rooms:4 imports pi_facegate.paths",
        "pi_facegate.core._violation_rooms:5 imports pi_facegate.vision",
        "pi_facegate.core._violation_rooms:6 imports pi_facegate.storage.gallery.Gallery",
        "pi_facegate.core._violation_rooms:7 imports pydantic",
        "pi_facegate.core._violation_yaml:10 imports yaml",
    ]
