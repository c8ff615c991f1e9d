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


def write_btcv(root, cases: int = 3, shape=(40, 36, 20), classes: int = 3, unlabelled: int = 0
               ) -> str:
  """A BTCV-layout folder: CT-like volumes (a body of soft tissue, organs as brighter blobs at
  random places) stored LPS with anisotropic voxels, as scanners write them; the last case is
  the validation one; `unlabelled` more scans in imagesTs/ (img0061, ...) listed under "test"
  as BTCV's dataset_0.json lists them (paths, no labels)."""
  rng = np.random.default_rng(0)
  affine = np.diag([-1.2, -1.2, 2.5, 1.0])
  affine[:3, 3] = (20.0, 15.0, -30.0)
  entries = []
  grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
  tests = [61 + k for k in range(unlabelled)]
  for i in list(range(1, cases + 1)) + tests:
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
    files = ((("imagesTs", f"img{i:04d}", image.astype(np.int16)),) if i in tests else
             (("imagesTr", f"img{i:04d}", image.astype(np.int16)),
              ("labelsTr", f"label{i:04d}", label)))
    for folder, name, data in files:
      os.makedirs(os.path.join(root, folder), exist_ok=True)
      nib.save(nib.Nifti1Image(data, affine), os.path.join(root, folder, f"{name}.nii.gz"))
    if i not in tests:
      entries.append({"image": f"imagesTr/img{i:04d}.nii.gz",
                      "label": f"labelsTr/label{i:04d}.nii.gz"})
  meta = {"labels": {str(k): ("background" if k == 0 else f"organ{k}") for k in range(classes)},
          "training": entries[:-1], "validation": entries[-1:]}
  if tests:
    meta["test"] = [f"imagesTs/img{i:04d}.nii.gz" for i in tests]
  with open(os.path.join(root, "dataset_0.json"), "w") as f:
    json.dump(meta, f)
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


def test_pretraining_reads_the_unlabelled_scans_and_segment3d_never_does(tmp_path, monkeypatch):
  """Through the runner: the volumes each stage's training batches are cut from, and those
  segment3d (and its random-init twin) is scored on."""
  from mae_jax.data import volumes  # pylint: disable=g-import-not-at-top
  config = load_config("btcv.py", "smoke")
  config.data.dataset = "btcv:" + write_btcv(tmp_path / "BTCV", cases=4, unlabelled=2)
  config.data.num_classes = 3
  assert tuple(config.data.pretrain_splits) == ("training", "test")   # the study's default
  workdir = str(tmp_path / "run")
  crops, scored, cut = {}, {}, volumes.random_crops
  reading = []

  def recording_crops(case, *args, **kwargs):
    if reading:
      crops[reading[0]].add(case.name)
    return cut(case, *args, **kwargs)

  windows = segment3d_task._window_batches   # pylint: disable=protected-access

  def recording_windows(cases, *args, **kwargs):
    scored[reading[0]] = [c.name for c in cases]
    return windows(cases, *args, **kwargs)

  def fake_train_stage(task, cfg, stage_dir, seed, parallel):
    del cfg, parallel
    folder = os.path.relpath(stage_dir, workdir)
    reading[:] = [folder]
    crops[folder] = set()
    batches = task.data.batches(seed, 0, 1, 0)
    for _ in range(2 * task.data.steps_per_epoch):    # two epochs: every volume comes up
      next(batches)
    if task.name == "segment3d":
      next(iter(task.evaluation.batches(1, 0)))
    reading.clear()
    return ({"loss": 1.0} if task.name == "pretrain" else
            {"dice": 0.5, "per_class_dice": {"organ1": 0.5, "organ2": 0.5}, "volumes": 1.0})

  monkeypatch.setattr(volumes, "random_crops", recording_crops)
  monkeypatch.setattr(segment3d_task, "_window_batches", recording_windows)
  monkeypatch.setattr(experiment.train, "train_stage", fake_train_stage)
  segment3d_task._load.cache_clear()   # pylint: disable=protected-access
  experiment.run(config, workdir)
  labelled_train = {"img0001", "img0002", "img0003"}
  assert crops["pretrain"] == labelled_train | {"img0061", "img0062"}
  twin = os.path.join("baselines", "segment3d_random_init")
  for folder in ("segment3d", twin):
    assert crops[folder] == labelled_train, folder
    assert scored[folder] == ["img0004"], folder
  # The study's figures stand beside the run's own in results.md.
  published = (tmp_path / "run" / "results.md").read_text().split("## Published figures")[1]
  assert "TinyImageNet MAE study, volume extension" in published
  assert "0.7712 (this run: 0.5)" in published and "0.7548 (this run: 0.5)" in published


def test_missing_unlabelled_scans_are_one_line_naming_the_file(tmp_path):
  root = write_btcv(tmp_path / "BTCV", cases=3, unlabelled=1)
  os.remove(os.path.join(root, "imagesTs", "img0061.nii.gz"))
  config = load_config("btcv.py", "smoke")
  config.data.dataset, config.data.num_classes = f"btcv:{root}", 3
  segment3d_task._load.cache_clear()   # pylint: disable=protected-access
  with pytest.raises(ConfigError) as err:
    segment3d_task.volume_source(config)
  message = str(err.value)
  assert "\n" not in message and "imagesTs/img0061.nii.gz" in message
  assert "--config.data.pretrain_splits=training" in message
  config.data.pretrain_splits = ("training",)
  source = segment3d_task.volume_source(config)
  assert [c.name for c in source.pretrain_cases] == ["img0001", "img0002"]


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
