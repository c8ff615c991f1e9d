"""The modality registry: a modality from outside the package runs end to end through mae-jax,
configs are refused in one line where they ask for what their modality does not have."""

import json
import os
import subprocess
import sys

import pytest

from mae_jax import config_lib, experiment, registry
from mae_jax.errors import ConfigError
from tests.helpers import REPO, load_config

TOY = os.path.join(REPO, "tests", "toy_modality.py")


def _toy_config():
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("toy_modality", TOY)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)   # registers "toy"
  return module.get_config()


def test_every_shipped_modality_is_registered_with_its_stages():
  found = {m.name: [s.name for s in m.stages] for m in registry.modalities()}
  assert found["images"] == ["pretrain", "linprobe", "finetune", "visualize"]
  assert found["segmentation"] == ["pretrain", "segment", "visualize"]
  assert found["series"] == ["pretrain", "forecast"]
  assert found["tables"] == ["impute"]
  assert found["volumes"] == ["pretrain", "segment3d"]


@pytest.mark.parametrize("dataset,stages,expected", [
    ("digits", "pretrain", "images"), ("tfds:cifar10", "pretrain", "images"),
    ("digits_seg", "pretrain,segment", "segmentation"), ("segfolder:/x", "segment", "segmentation"),
    ("csv:/x.csv", "pretrain,forecast", "series"), ("csv:/x.csv", "impute", "tables"),
    ("mni152", "pretrain", "volumes"), ("btcv:/x", "segment3d", "volumes")])
def test_the_dataset_decides_the_modality(dataset, stages, expected):
  config = config_lib.base_config(expected)
  config.data.dataset, config.stages = dataset, stages
  assert registry.for_config(config).name == expected


def test_a_twin_baseline_is_its_stage_from_random_init():
  config = load_config("digits.py", "smoke")
  m = registry.for_config(config)
  (run,) = m.baseline("finetune_random_init").training_runs(config)
  assert run == registry.Run(os.path.join("baselines", "finetune_random_init"), "finetune",
                             {"finetune.init_from": "random"}, seed_name="finetune")
  assert m.baseline("raw_pixels").training_runs(config) == []


def test_a_field_no_stage_reads_is_refused_in_one_line():
  config = load_config("digits.py", "smoke")
  config.pretrain.drop_path = 0.1   # the fine-tune's: pretraining has no drop path
  with pytest.raises(ConfigError, match=r"config\.pretrain\.drop_path: no stage of images"):
    experiment.validate(config)
  config = load_config("temps.py", "smoke")
  config.pretrain.crop_scale = (0.5, 1.0)      # series are not cropped like images
  with pytest.raises(ConfigError, match=r"config\.pretrain\.crop_scale: no stage of series"):
    experiment.validate(config)
  config = load_config("tables.py", "smoke")
  config.segment = config_lib.base_config("segmentation").segment
  with pytest.raises(ConfigError, match=r"config\.segment: no stage of tables reads it"):
    experiment.validate(config)


def test_a_stage_of_another_modality_is_refused_naming_whose_it_is():
  config = load_config("digits.py", "smoke")
  config.stages = "pretrain,segment"
  with pytest.raises(ConfigError, match=r"holds images, which has no stage 'segment'.*"
                                        r"segment is of segmentation"):
    experiment.validate(config)


def test_the_toy_modality_builds_and_validates():
  config = _toy_config()
  assert registry.for_config(config).name == "toy"
  experiment.validate(config)
  config.classify.layer_decay = 0.5
  config.classify.init_from_typo = ""
  with pytest.raises(ConfigError, match=r"config\.classify\.init_from_typo"):
    experiment.validate(config)


@pytest.mark.slow
def test_a_modality_from_outside_the_package_runs_end_to_end_through_mae_jax(tmp_path):
  """Registered by its own file (tests/toy_modality.py) at config load: the package is not
  edited, the console script runs its stages and baselines in the one loop."""
  script = os.path.join(os.path.dirname(sys.executable), "mae-jax")
  command = [script] if os.path.exists(script) else [sys.executable, "-m", "mae_jax.main"]
  workdir = str(tmp_path / "toy")
  out = subprocess.run(command + [f"--config={TOY}", f"--workdir={workdir}"], cwd=REPO,
                       capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.load(open(os.path.join(workdir, "summary.json")))
  assert set(summary) == {"pretrain", "classify", "baselines"}
  assert set(summary["baselines"]) == {"classify_random_init", "majority"}
  for result in (summary["classify"], summary["baselines"]["classify_random_init"]):
    assert 0.0 <= result["accuracy"] <= 100.0 and result["steps"] == 12
  assert os.path.exists(os.path.join(workdir, "pretrain", "export", "model.json"))
  model = json.load(open(os.path.join(workdir, "pretrain", "export", "model.json")))
  assert model["length"] == 32
  assert "dataset toy_sines: {'train': 128, 'test': 64} waves, 4 frequencies" in out.stdout


def test_loading_every_modality_and_checking_a_series_config_imports_no_tensorflow():
  code = ("import sys\n"
          "from mae_jax import experiment, registry\n"
          "from tests.helpers import load_config\n"
          "registry.modalities()\n"
          "experiment.validate(load_config('temps.py', 'smoke'))\n"
          "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_stage_and_its_twin_see_the_same_batches_and_head_init(tmp_path, monkeypatch):
  """Paired arms: the twin baseline trains on the very batches the stage trains on (hashed),
  from the same head init; only the encoder's init differs."""
  import hashlib  # pylint: disable=g-import-not-at-top
  import dataclasses  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  config = load_config("digits.py", "smoke")
  m = registry.for_config(config)
  source = m.load_source(config)
  seen = {}

  def fake_train_stage(task, cfg, stage_dir, seed, parallel):
    del cfg, parallel
    batches = task.data.batches(seed, 0, 1, 0)
    digest = hashlib.sha256()
    for _ in range(3):
      for key, value in sorted(next(batches).items()):
        digest.update(key.encode() + np.ascontiguousarray(value).tobytes())
    x = jax.numpy.zeros((1, *task.input_shape))
    head = dataclasses.replace(task, init_from="random").init(
        jax.random.fold_in(jax.random.PRNGKey(seed), 0), x)["params"]["head"]
    seen[os.path.relpath(stage_dir, str(tmp_path))] = (task.init_from, digest.hexdigest(),
                                                       jax.tree.map(np.asarray, head))
    return {}

  monkeypatch.setattr(experiment.train, "train_stage", fake_train_stage)
  for stage in ("linprobe", "finetune"):
    experiment.run_stage(config, registry.Run(stage, stage), str(tmp_path), source)
    (twin,) = m.baseline(f"{stage}_random_init").training_runs(config)
    experiment.run_stage(config, twin, str(tmp_path), source)
    ours, theirs = seen[stage], seen[twin.folder]
    assert ours[0].endswith(os.path.join("pretrain", "export")) and theirs[0] == "random"
    assert ours[1] == theirs[1], f"{stage}: the twin trains on other batches"
    jax.tree.map(np.testing.assert_array_equal, ours[2], theirs[2])
  assert seen["linprobe"][1] != seen["finetune"][1]   # distinct streams between stages
