"""How mae_jax.data's modules import: no TensorFlow where none is needed, TF only through
tfsetup (which hides the accelerators from it), mae_jax's TFDS builders registered wherever a
TFDS dataset can be loaded, and no import cycles."""

import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "mae_jax", "data")
PACKAGE = "mae_jax.data"

# What the series, table and volume stages (and the model) import: none of it needs TF.
TF_FREE = ("mae_jax", "mae_jax.errors", "mae_jax.data", "mae_jax.data.base",
           "mae_jax.data.csvfile", "mae_jax.data.idx", "mae_jax.data.schedule",
           "mae_jax.data.series", "mae_jax.data.tables", "mae_jax.data.volumes")


def _python(code: str) -> subprocess.CompletedProcess:
  """Runs `code` in a fresh interpreter (nothing imported yet) from the repository root."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)


@pytest.mark.parametrize("module", TF_FREE)
def test_module_imports_without_tensorflow(module):
  proc = _python(f"import sys, {module}\n"
                 "loaded = [m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules]\n"
                 "assert 'tensorflow' not in sys.modules, loaded\n"
                 "assert not loaded, loaded\n")
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_importing_a_tf_module_hides_the_accelerators_from_tf_first():
  proc = _python("import tensorflow as tf\n"
                 "calls = []\n"
                 "tf.config.set_visible_devices = lambda d, kind: calls.append((list(d), kind))\n"
                 "import mae_jax.data.pipeline\n"
                 "assert calls == [([], 'GPU'), ([], 'TPU')], calls\n")
  assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("first", ["import mae_jax.data.sources",
                                   "import mae_jax.data.tfds_prep"])
def test_tiny_imagenet_builder_is_registered_where_tfds_datasets_load(first, tmp_path):
  proc = _python(f"{first}\n"
                 "import tensorflow_datasets as tfds\n"
                 f"builder = tfds.builder('tiny_imagenet', data_dir={str(tmp_path)!r})\n"
                 "assert type(builder).__module__ == 'mae_jax.data.tiny_imagenet'\n")
  assert proc.returncode == 0, proc.stderr[-3000:]


def _modules() -> dict[str, str]:
  """{module name: file} of mae_jax/data."""
  files = {}
  for file in sorted(os.listdir(DATA)):
    if file.endswith(".py"):
      stem = file[:-3]
      files[PACKAGE if stem == "__init__" else f"{PACKAGE}.{stem}"] = os.path.join(DATA, file)
  return files


def _imports(path: str, modules: dict[str, str]) -> set[str]:
  """The mae_jax.data modules that `path` imports, at the top or inside functions, or names
  in a string (as for importlib.import_module)."""
  found = set()
  for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      found.add(node.module)
      found.update(f"{node.module}.{alias.name}" for alias in node.names)
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
      found.add(node.value)
  # `from mae_jax.data import x` imports the submodule x, not the package as a whole.
  found.discard(PACKAGE)
  return {m for m in found if m in modules}


def test_no_import_cycles_between_data_modules():
  modules = _modules()
  graph = {m: _imports(path, modules) - {m} for m, path in modules.items()}
  state, stack = {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for n in sorted(graph[m]):
      if state.get(n) == "open":
        raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
      if n not in state:
        visit(n)
    stack.pop()
    state[m] = "done"

  for m in sorted(graph):
    if m not in state:
      visit(m)
  assert f"{PACKAGE}.sources" not in graph[f"{PACKAGE}.seg_sources"]
  assert f"{PACKAGE}.seg_sources" not in graph[f"{PACKAGE}.tfds_prep"]


def test_only_tfsetup_imports_tensorflow():
  for name, path in _modules().items():
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import)
               else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      direct = [n for n in names if n == "tensorflow" or n.startswith("tensorflow.")]
      assert not direct or name == f"{PACKAGE}.tfsetup", (name, direct)


def test_sources_raises_the_errors_modules_dataset_unavailable_error():
  from mae_jax import errors  # pylint: disable=g-import-not-at-top
  from mae_jax.data import sources  # pylint: disable=g-import-not-at-top
  assert sources.DatasetUnavailableError is errors.DatasetUnavailableError
  assert issubclass(errors.DatasetUnavailableError, (errors.UserError, RuntimeError))
