"""The package's import graph, read with `ast` (nothing is imported, JAX included): no import
cycles, and the shared core never imports a modality (STYLE.md, "How a modality plugs in").

Imports inside functions count: a deferred import still ties the two modules together, it only
hides the cycle until the function runs. So do those under `typing.TYPE_CHECKING`: a type is a
dependency too. The registry reaches the modalities by
`importlib.import_module` of names in a list, which is not an import statement and so not an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Container
import pathlib

PACKAGE = "mae_jax"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE

# The shared core, relative to the package; "models" covers models.* too.
CORE = ("masking", "losses", "optim", "train", "models", "tasks.base", "registry", "config_lib",
        "experiment", "checkpoint", "parallel", "progress", "metrics", "errors")

# (importer, imported) -> the import statements behind the edge, as "path:line".
Edges = dict[tuple[str, str], list[str]]


# ---- the graph ----------------------------------------------------------------------------------

def module_files(root: pathlib.Path, package: str) -> dict[str, pathlib.Path]:
  """Every module under `root` (the package's folder): dotted name -> file.

  A package's __init__.py stands for the package itself (mae_jax/tasks/__init__.py ->
  mae_jax.tasks).
  """
  modules = {}
  for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    modules[".".join((package, *parts))] = path
  return modules


def _nearest_module(name: str, modules: Container[str]) -> str | None:
  """The longest prefix of dotted `name` that is a module (what `import name` depends on when
  its tail is an attribute), or None when outside the package."""
  parts = name.split(".")
  for n in range(len(parts), 0, -1):
    prefix = ".".join(parts[:n])
    if prefix in modules:
      return prefix
  return None


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
              modules: Container[str]) -> list[str]:
  """The modules of the package that one import statement in `module` loads."""
  if isinstance(node, ast.Import):
    found = [_nearest_module(alias.name, modules) for alias in node.names]
    return [t for t in found if t]
  if node.level:
    # Relative: level 1 is the module's own package (the package itself for an __init__).
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    source = ".".join(base + ([node.module] if node.module else []))
  else:
    source = node.module or ""
  found = []
  for alias in node.names:
    # `from a import b` loads a.b when b is a module, else it takes attribute b of a.
    sub = f"{source}.{alias.name}"
    target = sub if sub in modules else _nearest_module(source, modules)
    if target:
      found.append(target)
  return found


def import_graph(root: pathlib.Path, package: str) -> Edges:
  """Every import edge between the modules under `root`, at any depth (functions included).

  Self-imports are dropped; parent packages that Python runs implicitly are not edges, else
  every package __init__ that imports its own submodules would look like a cycle.
  """
  modules = module_files(root, package)
  edges: Edges = {}
  for module, path in modules.items():
    is_package = path.name == "__init__.py"
    where = path.relative_to(root.parent).as_posix()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
      if not isinstance(node, (ast.Import, ast.ImportFrom)):
        continue
      # dict.fromkeys: `from mae_jax.x import (a, b)` is one site, not one per name.
      for target in dict.fromkeys(_imported(node, module, is_package, modules)):
        if target != module:
          edges.setdefault((module, target), []).append(f"{where}:{node.lineno}")
  return edges


def import_cycles(edges: Edges) -> list[list[str]]:
  """The strongly connected components with more than one module (Tarjan), each sorted."""
  succ: dict[str, list[str]] = {}
  for a, b in edges:
    succ.setdefault(a, []).append(b)
    succ.setdefault(b, [])
  index: dict[str, int] = {}
  low: dict[str, int] = {}
  stack: list[str] = []
  on_stack: set[str] = set()
  components = []

  def visit(v: str) -> None:
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in succ[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        components.append(sorted(component))

  # A package of ~100 modules stays far below the recursion limit.
  for v in sorted(succ):
    if v not in index:
      visit(v)
  return sorted(components)


def is_core(module: str, package: str = PACKAGE) -> bool:
  """Whether `module` belongs to the shared core (CORE)."""
  if module.startswith(f"{package}.models."):
    return True
  return module in {f"{package}.{c}" for c in CORE}


def is_modality(module: str, package: str = PACKAGE) -> bool:
  """Whether `module` is a modality: under tasks/, other than the package and tasks.base."""
  base = f"{package}.tasks.base"
  return (module.startswith(f"{package}.tasks.") and module != base
          and not module.startswith(base + "."))


def upward_imports(edges: Edges, package: str = PACKAGE) -> Edges:
  """The edges from a core module to a modality module."""
  return {(a, b): sites for (a, b), sites in edges.items()
          if is_core(a, package) and is_modality(b, package)}


def describe_cycles(cycles: list[list[str]], edges: Edges) -> str:
  """Each cycle with its modules and the import statements that close it."""
  lines = []
  for modules in cycles:
    inside = set(modules)
    lines.append(f"cycle of {len(modules)}: {', '.join(modules)}")
    for (a, b), sites in sorted(edges.items()):
      if a in inside and b in inside:
        lines.append(f"  {a} -> {b}  ({', '.join(sites)})")
  return "\n".join(lines)


def _describe_edges(edges: Edges) -> str:
  return "\n".join(f"  {a} -> {b}  ({', '.join(sites)})" for (a, b), sites in sorted(edges.items()))


# ---- the package --------------------------------------------------------------------------------

def test_both_sides_of_the_upward_check_exist():
  """CORE and tasks/ name real modules, so a rename cannot make the upward check vacuous."""
  modules = module_files(ROOT, PACKAGE)
  present = [c for c in CORE if f"{PACKAGE}.{c}" in modules]
  # CORE may name a module before it is written, but most of the core is there.
  assert len(present) >= len(CORE) // 2, f"core modules found: {present}"
  assert [m for m in modules if is_modality(m)], f"no modality module under {PACKAGE}/tasks/"


def test_no_import_cycles():
  edges = import_graph(ROOT, PACKAGE)
  cycles = import_cycles(edges)
  assert not cycles, "import cycles (edges with file:line):\n" + describe_cycles(cycles, edges)


def test_core_never_imports_a_modality():
  upward = upward_imports(import_graph(ROOT, PACKAGE))
  assert not upward, ("core modules import modality modules (go through mae_jax.registry "
                      "instead):\n" + _describe_edges(upward))


# ---- the graph builder, on a package written here -----------------------------------------------

def _write(root: pathlib.Path, files: dict[str, str]) -> None:
  for name, text in files.items():
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_graph_builder_finds_a_cycle_through_a_function_level_import(tmp_path):
  # a -> b (top level), b -> sub.c (inside a function), sub.c -> a (relative, inside a method):
  # one cycle of three. d hangs off it; e's `from fake import VERSION` is an attribute of fake.
  _write(tmp_path / "fake", {
      "__init__.py": "VERSION = 1\n",
      "a.py": "from fake import b\n",
      "b.py": "def load():\n  import fake.sub.c\n  return fake.sub.c\n",
      "sub/__init__.py": "from . import c\n",
      "sub/c.py": "class C:\n  def f(self):\n    from .. import a\n    return a\n",
      "d.py": "from fake.a import b\nfrom fake.sub.c import C\n",
      "e.py": "from fake import VERSION\nimport os\n",
  })
  edges = import_graph(tmp_path / "fake", "fake")
  assert set(edges) == {("fake.a", "fake.b"), ("fake.b", "fake.sub.c"), ("fake.sub", "fake.sub.c"),
                        ("fake.sub.c", "fake.a"), ("fake.d", "fake.a"), ("fake.d", "fake.sub.c"),
                        ("fake.e", "fake")}
  assert edges["fake.b", "fake.sub.c"] == ["fake/b.py:2"]
  assert edges["fake.sub.c", "fake.a"] == ["fake/sub/c.py:3"]
  cycles = import_cycles(edges)
  assert cycles == [["fake.a", "fake.b", "fake.sub.c"]]
  message = describe_cycles(cycles, edges)
  assert "fake.b -> fake.sub.c  (fake/b.py:2)" in message
  assert "fake.sub.c -> fake.a  (fake/sub/c.py:3)" in message


def test_upward_imports_are_found_inside_functions(tmp_path):
  _write(tmp_path / "fake", {
      "__init__.py": "",
      "train.py": "def run():\n  from fake.tasks import images\n",
      "models/__init__.py": "",
      "models/vit.py": "from fake.tasks.base import Task\n",
      "tasks/__init__.py": "",
      "tasks/base.py": "",
      "tasks/images.py": "from fake import train\nfrom fake.tasks import base\n",
  })
  edges = import_graph(tmp_path / "fake", "fake")
  # A modality importing the core is the right direction; core -> tasks.base is core to core.
  assert upward_imports(edges, "fake") == {("fake.train", "fake.tasks.images"): ["fake/train.py:2"]}
  assert import_cycles(edges) == [["fake.tasks.images", "fake.train"]]
