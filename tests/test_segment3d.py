"""Volumes in the loop: MAE pretraining on 3-D crops, the segment3d stage (UNETR) and its
random-init baseline; the Dice in summary.json equals the one recomputed from the written NIfTI
label maps."""

import json
import os

import nibabel as nib
import numpy as np
import pytest

from mae_jax import experiment
from mae_jax.tasks import volumes as segment3d_task
from mae_jax.errors import ConfigError
from tests.helpers import load_config


def write_btcv(root, cases: int = 3, shape=(40, 36, 20), classes: int = 3) -> str:
  """A BTCV-layout folder: CT-like volumes (a body of soft tissue, organs as brighter blobs at
  random places) stored LPS with anisotropic voxels, as scanners write them."""
  rng = np.random.default_rng(0)
  affine = np.diag([-1.2, -1.2, 2.5, 1.0])
  affine[:3, 3] = (20.0, 15.0, -30.0)
  entries = []
  grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
  for i in range(1, cases + 1):
    image = np.full(shape, -1000.0)
    label = np.zeros(shape, np.uint8)
    body = (((grid - np.asarray(shape) / 2) / (np.asarray(shape) * 0.45)) ** 2).sum(-1) < 1
    image[body] = 40.0
    for k in range(1, classes):
      centre = rng.uniform(0.3, 0.7, 3) * np.asarray(shape)
      blob = (((grid - centre) / np.asarray([6, 6, 3])) ** 2).sum(-1) < 1
      label[blob & body] = k
      image[blob & body] = 40.0 + 60.0 * k
    image += rng.normal(0, 10, shape)
    for folder, name, data in (("imagesTr", f"img{i:04d}", image.astype(np.int16)),
                               ("labelsTr", f"label{i:04d}", label)):
      os.makedirs(os.path.join(root, folder), exist_ok=True)
      nib.save(nib.Nifti1Image(data, affine), os.path.join(root, folder, f"{name}.nii.gz"))
    entries.append({"image": f"imagesTr/img{i:04d}.nii.gz", "label": f"labelsTr/label{i:04d}.nii.gz"})
  with open(os.path.join(root, "dataset_0.json"), "w") as f:
    json.dump({"labels": {str(k): ("background" if k == 0 else f"organ{k}")
                          for k in range(classes)},
               "training": entries[:-1], "validation": entries[-1:]}, f)
  return str(root)


def _check_run(config, workdir, summary):
  source = segment3d_task.volume_source(config)
  result = summary["segment3d"]
  assert set(result["per_class_dice"]) == set(source.class_names[1:])
  assert 0.0 <= result["dice"] <= 1.0 and result["volumes"] == len(source.val)
  predictions = os.path.join(workdir, "segment3d", "predictions")
  for case in source.val:
    written = nib.load(os.path.join(predictions, f"{case.name}.nii.gz"))
    assert written.shape == case.source_shape
    np.testing.assert_allclose(written.affine, case.source_affine, atol=1e-5)
  from_files = segment3d_task.dice_from_files(predictions, source)
  np.testing.assert_allclose(from_files["dice"], result["dice"], rtol=1e-9)
  assert os.path.exists(os.path.join(workdir, "segment3d", segment3d_task.SLICES_PNG))
  return source


@pytest.mark.slow
def test_brain_smoke_pretrains_segments_and_scores_like_its_files(tmp_path):
  config = load_config("brain.py", "smoke")
  workdir = str(tmp_path / "run")
  summary = experiment.run(config, workdir)
  _check_run(config, workdir, summary)
  assert set(summary["baselines"]) == {"segment3d_random_init"}
  assert os.path.exists(os.path.join(workdir, "pretrain", segment3d_task.RECONSTRUCTIONS_PNG))
  assert "mean Dice" in (tmp_path / "run" / "results.md").read_text()


@pytest.mark.slow
def test_btcv_layout_segment3d_writes_niftis_on_the_file_grid(tmp_path):
  config = load_config("btcv.py", "smoke")
  config.data.dataset = "btcv:" + write_btcv(tmp_path / "BTCV")
  config.data.num_classes = 3
  config.stages, config.baselines = "segment3d", ""
  config.segment3d.init_from = "random"
  workdir = str(tmp_path / "run")
  summary = experiment.run(config, workdir)
  source = _check_run(config, workdir, summary)
  assert [c.name for c in source.val] == ["img0003"]


def test_dice_is_monai_dice_metric():
  torch = pytest.importorskip("torch")
  metrics = pytest.importorskip("monai.metrics")
  rng = np.random.default_rng(0)
  k = 4
  truth = rng.integers(0, 3, (10, 9, 8))            # class 3 absent: skipped, as MONAI's
  pred = np.where(rng.uniform(size=truth.shape) < 0.7, truth, rng.integers(0, k, truth.shape))
  ours = segment3d_task.volume_dice(pred, truth, k)[1:]
  one_hot = lambda x: torch.nn.functional.one_hot(  # noqa: E731
      torch.as_tensor(x), k).permute(3, 0, 1, 2)[None]
  theirs = metrics.DiceMetric(include_background=False, ignore_empty=True)(
      one_hot(pred), one_hot(truth))[0].numpy()
  np.testing.assert_allclose(ours, theirs, rtol=1e-6)
  assert np.isnan(ours[-1])
  total = segment3d_task.dice_sums(pred, truth, k)
  scores = segment3d_task.dice_scores(total, ("bg", "a", "b", "c"))
  assert scores["per_class_dice"]["c"] is None
  np.testing.assert_allclose(scores["dice"], np.nanmean(theirs), rtol=1e-6)


def test_volume_configs_refuse_bad_fields():
  config = load_config("brain.py", "smoke")
  config.data.roi_size = (16, 16, 10)
  with pytest.raises(ConfigError, match="config.data.roi_size"):
    experiment.validate(config)
  config = load_config("brain.py", "smoke")
  config.segment3d.feature_blocks = (1, 1)
  with pytest.raises(ConfigError, match="config.segment3d.feature_blocks"):
    experiment.validate(config)
  config = load_config("brain.py", "smoke")
  config.baselines = "lstm"
  with pytest.raises(ConfigError, match="holds volumes, which has no baseline 'lstm'"):
    experiment.validate(config)
  config = load_config("brain.py", "smoke")
  config.segment3d.overlap = 1.0
  with pytest.raises(ConfigError, match="config.segment3d.overlap"):
    experiment.validate(config)
