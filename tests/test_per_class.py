"""Per-class top-1 of the classifier stages: summed over the whole eval split and every device,
named as the source names its classes, and shown in results.md and per_class.png."""

import dataclasses
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from mae_jax import per_class, registry, report, train
from mae_jax.data import sources
from mae_jax.parallel import DataParallel
from mae_jax.tasks import images
from mae_jax.tasks.base import Task
from tests import test_fashion_mnist, test_imagefolder
from tests.helpers import load_config, mock_tfds


class Nearest(nn.Module):
  """A classifier without parameters: an image's class is the centre nearest its top-left red."""
  centers: tuple[float, ...]

  @property
  def num_classes(self) -> int:
    return len(self.centers)

  @nn.compact
  def __call__(self, x, train=False):
    del train
    return -jnp.abs(x[:, :1, 0, 0] - jnp.asarray(self.centers, jnp.float32))


def _evaluate(model: nn.Module, source, batches=None) -> dict:
  """The loop's evaluation (train._evaluator) of `model` on 4 fake devices; `batches` replace
  the source's eval batches."""
  config = load_config("digits.py", "smoke")
  config.data.update(mean=(0.0,) * 3, std=(1 / 255,) * 3, batch_layout="HWC", image_size=16,
                     eval_batch_size=4)        # raw 0-255 pixels reach the model
  ev = images.classification_eval(config, model, source)
  if batches is not None:
    ev = dataclasses.replace(ev, batches=lambda num_shards, shard_index: iter(batches))
  task = Task("linprobe", model, None, None, input_shape=(16, 16, 3), evaluation=ev)
  par = DataParallel()
  evaluate = train._evaluator(task, par, types.SimpleNamespace(wait=lambda: None), 1, 0)
  state = train.TrainState(step=jnp.zeros((), jnp.int32), params={}, opt_state=(),
                           model_state={}, rng=jax.random.PRNGKey(0))
  return ev.result(evaluate(par.put_state(state)))


def test_per_class_top1_is_numpys_over_every_batch_and_device():
  k, n, batch = 9, 37, 8                       # 5 batches, the last padded; class 8 absent
  rng = np.random.default_rng(0)
  labels = rng.integers(0, k - 1, n)
  pred = np.where(rng.random(n) < 0.6, labels, rng.integers(0, k, n))
  pad = -n % batch
  image = np.zeros((n + pad, 16, 16, 3), np.uint8)
  image[:n, 0, 0, 0] = 20 * pred
  label = np.concatenate([labels, np.zeros(pad, int)]).astype(np.int32)
  mask = (np.arange(n + pad) < n).astype(np.float32)
  batches = [{"image": image[i:i + batch], "label": label[i:i + batch],
              "mask": mask[i:i + batch]} for i in range(0, n + pad, batch)]
  source = types.SimpleNamespace(class_names=tuple(f"c{i}" for i in range(k)))
  result = _evaluate(Nearest(tuple(20.0 * np.arange(k))), source, batches)

  names = [f"c{i}" for i in range(k)]
  expected = {names[c]: 100 * np.mean(pred[labels == c] == c) for c in range(k - 1)}
  assert list(result[per_class.TOP1]) == names
  np.testing.assert_allclose([result[per_class.TOP1][c] for c in expected],
                             list(expected.values()), rtol=1e-6)
  assert result[per_class.TOP1]["c8"] is None                 # no eval example: no accuracy
  assert result[per_class.EXAMPLES] == {names[c]: int((labels == c).sum()) for c in range(k)}
  np.testing.assert_allclose(result["top1"], 100 * np.mean(pred == labels), rtol=1e-6)
  # The host-side path (the raw_pixels baseline) agrees, class 255 counted like any other.
  many = [str(i) for i in range(300)]
  got = per_class.from_predictions(np.r_[pred, 255, 7], np.r_[labels, 255, 255], many)
  assert got[per_class.EXAMPLES]["255"] == 2 and got[per_class.TOP1]["255"] == 50.0
  assert got[per_class.TOP1]["3"] == result[per_class.TOP1]["c3"]


def test_class_names_flow_from_the_sources(tmp_path):
  root = str(tmp_path / "folder")
  test_imagefolder.make_folder(root, per_class=1)
  folder = sources.get_source(f"imagefolder:{root}")
  assert folder.class_names == test_imagefolder.CLASSES
  assert folder.view(np.array([0, 2])).class_names == test_imagefolder.CLASSES
  # The real eval batches of the folder (2 per class): dog (red 50) is taken for a cat.
  result = _evaluate(Nearest((10.0, 200.0, 90.0)), folder)
  assert result[per_class.TOP1] == {"cat": 100.0, "dog": 0.0, "eel": 100.0}
  assert result[per_class.EXAMPLES] == {"cat": 2, "dog": 2, "eel": 2}

  test_fashion_mnist.make_folder(str(tmp_path / "fm"))
  fashion = sources.get_source(f"fashion_mnist:{tmp_path / 'fm'}")
  assert fashion.class_names[0] == "T-shirt/top" and len(fashion.class_names) == 10
  unnamed = sources.get_source(f"idx:{tmp_path / 'fm'}")
  assert unnamed.class_names == ()
  assert per_class.class_names(unnamed, 10) == [str(i) for i in range(10)]
  assert per_class.class_names(types.SimpleNamespace(class_names=("a", "b", "a")), 3) == [
      "a (0)", "b", "a (2)"]
  with mock_tfds("oxford_iiit_pet", str(tmp_path / "tfds"), 2, ("train", "test")) as data_dir:
    pets = sources.get_source("oxford_iiit_pet", data_dir=data_dir)
  assert len(pets.class_names) == 37 and pets.class_names[0] == "Abyssinian"


def _result(acc: list, counts: list, names: list[str]) -> dict:
  return {"top1": float(np.mean(acc)), "top5": 99.0,
          per_class.TOP1: dict(zip(names, acc)), per_class.EXAMPLES: dict(zip(names, counts))}


def test_report_has_a_per_class_section_and_chart(tmp_path):
  names = ["Abyssinian", "beagle", "pug", "Sphynx"]
  summary = {"pretrain": {"loss": 0.3},
             "linprobe": _result([80.0, 20.0, 55.0, 100.0], [10, 5, 8, 2], names),
             "baselines": {"linprobe_random_init": _result([30.0, 10.0, 60.0, 50.0],
                                                           [10, 5, 8, 2], names),
                           "raw_pixels": _result([10.0, 0.0, 40.0, 50.0], [10, 5, 8, 2], names)}}
  m = registry.get("images")
  written = report.write_report(str(tmp_path), summary, "oxford_iiit_pet", "B/16", m.titles(),
                                m.twins())
  assert per_class.PER_CLASS_PNG in written and report.RESULTS_MD in written
  md = (tmp_path / report.RESULTS_MD).read_text()
  part = md.split("## Per-class top-1")[1].split("## Published figures")[0]
  assert "![per_class.png](per_class.png)" in part
  probe = part.split("### linear probe\n")[1].split("###")[0]
  rows = [line for line in probe.splitlines() if line.startswith("|")]
  assert rows[0] == ("| class | eval examples | linear probe top-1 % | linear probe, random init "
                     "top-1 % | difference |")
  assert [r.split(" | ")[0].strip("| ") for r in rows[2:]] == [
      "beagle", "pug", "Abyssinian", "Sphynx"]                 # worst first
  assert rows[2] == "| beagle | 5 | 20.00 | 10.00 | +10.00 |"
  assert "### linear probe, random init" not in part           # beside its stage, not alone
  assert "| beagle | 5 | 0.00 |" in part.split("### logistic regression on raw pixels")[1]
  chart = np.asarray(Image.open(tmp_path / per_class.PER_CLASS_PNG).convert("RGB"))
  assert chart.shape[1] > chart.shape[0] and (chart < 250).any()    # two panels side by side


def test_a_thousand_classes_show_the_worst_and_best_only(tmp_path):
  names = [f"n{i:04d}" for i in range(1000)]
  acc = list(np.linspace(0, 100, 1000)[::-1])               # the last class is the worst
  summary = {"finetune": _result(acc, [50] * 1000, names)}
  md = per_class.section(summary, {"finetune": "fine-tune"})
  assert "1000 classes: the worst 10 and the best 10 are shown" in md
  rows = [line for line in md.splitlines() if line.startswith("| n")]
  assert len(rows) == 20 and rows[0].startswith("| n0999 | 50 | 0.00 |")
  assert rows[-1].startswith("| n0000 | 50 | 100.00 |") and "| ... |" in md
  path = str(tmp_path / per_class.PER_CLASS_PNG)
  assert per_class.plot(summary, path)
  height = Image.open(path).size[1]
  assert height < 100 * (1.5 + 0.22 * (per_class.CHART_MAX + 1))
  assert per_class.brief({"finetune": summary["finetune"]}) == {
      "finetune": {"top1": summary["finetune"]["top1"], "top5": 99.0}}
  assert not per_class.plot({"pretrain": {"loss": 1.0}}, path) and per_class.section({}) == ""
