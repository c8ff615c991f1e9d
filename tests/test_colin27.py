"""The colin27 volumes (data/colin27.py): AAL lobes on Colin27 to train, the same atlas on MNI152
to score, every T1 to pretrain; on generated files in mricron-data's layout (its names, shapes,
affines and dtypes), and on the real files where `apt-get install mricron-data` put them."""

import os

import nibabel as nib
import numpy as np
import pytest

from mae_jax import experiment
from mae_jax.data import colin27, volumes
from mae_jax.errors import ConfigError
from mae_jax.tasks import volumes as volume_tasks
from tests.helpers import load_config

# mricron-data's grids: (shape, voxel mm, world position of voxel 0), all RAS.
GRIDS = {"ch2bet.nii.gz": ((181, 217, 181), 1.0, (-90.0, -125.0, -71.0)),
         "ch2.nii.gz": ((181, 217, 181), 1.0, (-90.0, -125.0, -71.0)),
         "ch2better.nii.gz": ((301, 370, 316), 0.5, (-75.0, -107.0, -69.5)),
         "inia19-t1-brain.nii.gz": ((168, 206, 128), 0.5, (-42.0, -57.5, -30.0)),
         colin27.MNI152_IN_FOLDER: ((197, 233, 189), 1.0, (-98.0, -134.0, -72.0))}
# One AAL region of each lobe, as aal.nii.txt writes them (CRLF, a blank last line).
TABLE = ("1 Precentral_L 2001\r\n29 Insula_L 3001\r\n31 Cingulum_Ant_L 4001\r\n"
         "43 Calcarine_L 5001\r\n57 Postcentral_L 6001\r\n71 Caudate_L 7001\r\n"
         "81 Temporal_Sup_L 8111\r\n91 Cerebelum_Crus1_L 9001\r\n\r\n")
REGIONS = (1, 29, 31, 43, 57, 71, 81, 91)    # lobes 1..8 in LOBE_DIGITS' order
SPACING = (6.0, 6.0, 6.0)


def _affine(name: str) -> np.ndarray:
  _, mm, origin = GRIDS[name]
  affine = np.diag([mm, mm, mm, 1.0])
  affine[:3, 3] = origin
  return affine


def _world(name: str) -> list[np.ndarray]:
  """World mm of that file's voxels along x, y, z, shaped to broadcast to (X, Y, Z)."""
  shape, mm, origin = GRIDS[name]
  return [(o + mm * np.arange(n, dtype=np.float32)).reshape([-1 if a == k else 1
                                                             for a in range(3)])
          for k, (n, o) in enumerate(zip(shape, origin))]


def _brain(world: list[np.ndarray], size: float) -> tuple[np.ndarray, np.ndarray]:
  """(T1-like uint8 image, AAL region ids) of an ellipsoid brain `size` times a real one: grey
  shell and white core, the shell cut into one region per lobe by angle around the centre."""
  x, y, z = ((w - c) / (size * r) for w, c, r in zip(world, (0.0, -18.0, 8.0),
                                                    (68.0, 85.0, 62.0)))
  r2 = x * x + y * y + z * z
  image = np.where(r2 < 1, np.where(r2 < 0.64, 110, 80), 0).astype(np.uint8)
  sector = ((np.arctan2(y, z) + np.pi) * (8 / (2 * np.pi))).astype(np.int64) % 8
  shell = (r2 >= 0.64) & (r2 < 1)
  return image, np.where(shell, np.asarray(REGIONS, np.uint8)[sector], 0).astype(np.uint8)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> str:
  """A folder in mricron-data's layout, with the MNI152 image beside (no nilearn read)."""
  root = tmp_path_factory.mktemp("templates")
  image, regions = _brain(_world("ch2bet.nii.gz"), 1.0)
  for name, data in (("ch2bet.nii.gz", image), ("aal.nii.gz", regions),
                     ("ch2.nii.gz", np.maximum(image, 30).astype(np.uint8))):
    nib.save(nib.Nifti1Image(data, _affine("ch2bet.nii.gz")), str(root / name))
  (root / "aal.nii.txt").write_bytes(TABLE.encode())
  # Another brain in the same space: 5% larger, as an average of 152 differs from one subject.
  mni, _ = _brain(_world(colin27.MNI152_IN_FOLDER), 1.05)
  nib.save(nib.Nifti1Image(mni, _affine(colin27.MNI152_IN_FOLDER)),
           str(root / colin27.MNI152_IN_FOLDER))
  # The macaque: float32 like INIA19's, a small brain. ch2better is left out (optional).
  monkey, _ = _brain(_world("inia19-t1-brain.nii.gz"), 0.45)
  nib.save(nib.Nifti1Image(monkey.astype(np.float32) * 3.1, _affine("inia19-t1-brain.nii.gz")),
           str(root / "inia19-t1-brain.nii.gz"))
  return str(root)


def _load(dataset: str, splits=("training", "validation", "unlabelled"), num_classes: int = 0):
  return colin27.load_colin27(dataset, spacing=SPACING, intensity="zscore",
                              intensity_range=(0.0, 1.0), num_classes=num_classes,
                              pretrain_splits=splits)


def test_the_modality_reads_colin27_through_this_module(monkeypatch):
  """config.data.dataset "colin27[:/folder]" reaches load_colin27 with config.data's fields."""
  calls = []
  monkeypatch.setattr(colin27, "load_colin27", lambda dataset, **kw: calls.append((dataset, kw)))
  config = load_config("colin27.py")
  volume_tasks._load.cache_clear()   # pylint: disable=protected-access  (no stale sources)
  for dataset in ("colin27", "colin27:/elsewhere"):
    config.data.dataset = dataset
    volume_tasks.volume_source(config)
  volume_tasks._load.cache_clear()   # pylint: disable=protected-access  (nor these Nones)
  assert [d for d, _ in calls] == ["colin27", "colin27:/elsewhere"]
  assert calls[0][1]["spacing"] == (2.0, 2.0, 2.0) and calls[0][1]["pretrain_splits"] == (
      "training", "validation", "unlabelled")
  with pytest.raises(ConfigError, match="'colin27\\[:/path\\]'"):   # what else is a volume set
    volumes.load_volumes("colin28", spacing=SPACING, intensity="zscore",
                         intensity_range=(0.0, 1.0), num_classes=0, val_fraction=0.2, seed=0)


def test_lobe_table_groups_regions_by_the_code_digit(tmp_path):
  path = tmp_path / "aal.nii.txt"
  path.write_bytes(TABLE.encode())
  lut = colin27.read_lobe_table(str(path))
  assert lut[list(REGIONS)].tolist() == list(range(1, 9))
  assert lut.sum() == sum(range(1, 9))          # nothing else mapped
  assert colin27.CLASSES[lut[81]] == "temporal" and colin27.CLASSES[lut[91]] == "cerebellum"
  path.write_text("1 Precentral_L 2001\n2 Nowhere 1001\n")
  with pytest.raises(ConfigError, match=r"aal.nii.txt:2: region 2 has code 1001"):
    colin27.read_lobe_table(str(path))
  with pytest.raises(ConfigError, match="region 7, which aal.nii.txt does not list"):
    colin27.atlas_lobes(np.asarray([[[0, 1, 7]]]), lut, "aal.nii.gz")


def test_source_trains_on_colin27_and_scores_mni152_with_the_same_atlas(templates):
  source = _load("colin27:" + templates)
  assert source.class_names == colin27.CLASSES and source.num_classes == 9
  (train,), (val,) = source.train, source.val
  assert (train.name, val.name) == ("colin27", "mni152")
  assert train.source_shape == (181, 217, 181) and val.source_shape == (197, 233, 189)
  assert train.label is not None and set(np.unique(train.label)) == set(range(9))
  # Scored on MNI152's own grid: its labels are the atlas's at the same world points.
  truth = val.source_label
  assert truth.shape == (197, 233, 189) and val.label_path == ""
  lut = colin27.read_lobe_table(os.path.join(templates, "aal.nii.txt"))
  atlas = lut[np.asarray(nib.load(os.path.join(templates, "aal.nii.gz")).dataobj)]
  for world in ((30.0, 20.0, 40.0), (-50.0, -60.0, 0.0), (5.0, -80.0, -40.0)):
    i = np.subtract(world, GRIDS["ch2bet.nii.gz"][2]).astype(int)
    j = np.subtract(world, GRIDS[colin27.MNI152_IN_FOLDER][2]).astype(int)
    assert truth[tuple(j)] == atlas[tuple(i)], world
  assert (truth > 0).sum() == (atlas > 0).sum()   # whole voxel shifts: nothing lost or doubled
  # Pretraining: the listed lists in order; the macaque is there, ch2better is absent.
  assert [c.name for c in source.pretrain_cases] == ["colin27", "mni152", "ch2",
                                                     "inia19-t1-brain"]
  assert "pretraining reads 4 volumes, 2 of them unlabelled" in source.describe()
  kept_out = _load("colin27:" + templates, splits=("training", "unlabelled"))
  assert [c.name for c in kept_out.pretrain_cases] == ["colin27", "ch2", "inia19-t1-brain"]
  assert [c.name for c in kept_out.labelled().pretrain_cases] == ["colin27"]


def test_missing_files_and_wrong_class_counts_are_named(templates, tmp_path):
  with pytest.raises(ConfigError, match=r"ch2bet.nii.gz, .*aal.nii.gz, .*aal.nii.txt missing"):
    _load("colin27:" + str(tmp_path))
  with pytest.raises(ConfigError, match="num_classes=14: colin27 has 9 classes"):
    _load("colin27:" + templates, num_classes=14)
  # The atlas on another grid than the brain it labels.
  bad = tmp_path / "shifted"
  bad.mkdir()
  for name in ("ch2bet.nii.gz", "aal.nii.txt", colin27.MNI152_IN_FOLDER):
    os.symlink(os.path.join(templates, name), bad / name)
  atlas = nib.load(os.path.join(templates, "aal.nii.gz"))
  shifted = atlas.affine.copy()
  shifted[0, 3] += 2.0
  nib.save(nib.Nifti1Image(np.asarray(atlas.dataobj), shifted), str(bad / "aal.nii.gz"))
  with pytest.raises(ConfigError, match="different affines"):
    _load("colin27:" + str(bad))


def test_config_validates_and_its_unet_is_checked():
  config = load_config("colin27.py", "smoke")
  experiment.validate(config)
  assert config.data.dataset == "colin27" and "segment3d_unet" in config.baselines
  assert tuple(load_config("colin27.py", "unet_width=32").segment3d.unet_features) == (
      32, 32, 64, 128, 256, 32)                    # MONAI's BasicUNet
  config.segment3d.unet_features = (4, 4, 8, 8, 8, 8, 4)   # 5 poolings: 32 does not divide 16
  with pytest.raises(ConfigError, match="take multiples of 32"):
    experiment.validate(config)
  config = load_config("colin27.py", "smoke")
  config.segment3d.arch = "unet"                  # the stage itself as a U-Net: no encoder
  config.baselines = ""
  with pytest.raises(ConfigError, match="arch='unet' has no encoder to load"):
    experiment.validate(config)


@pytest.mark.slow
def test_smoke_runs_every_arm_on_generated_files(templates, tmp_path):
  config = load_config("colin27.py", "smoke")
  config.data.dataset = "colin27:" + templates
  summary = experiment.run(config, str(tmp_path / "run"))
  assert set(summary["baselines"]) == {"segment3d_random_init", "segment3d_unet"}
  for result in (summary["segment3d"], *summary["baselines"].values()):
    assert set(result["per_class_dice"]) == set(colin27.LOBES) and 0 <= result["dice"] <= 1
  written = nib.load(str(tmp_path / "run" / "baselines" / "segment3d_unet" / "predictions" /
                         "mni152.nii.gz"))
  assert written.shape == GRIDS[colin27.MNI152_IN_FOLDER][0]
  np.testing.assert_allclose(written.affine, _affine(colin27.MNI152_IN_FOLDER))


REAL = colin27.DEFAULT_FOLDER


@pytest.mark.skipif(not os.path.isfile(os.path.join(REAL, "ch2bet.nii.gz")),
                    reason="mricron-data is not installed (apt-get install mricron-data)")
def test_real_files_when_installed():
  """mricron-data's files as this module expects them: Colin27 and AAL on one 1 mm grid, 116
  regions in 8 lobes, every lobe in both brains, the atlas inside MNI152's brain."""
  lut = colin27.read_lobe_table(os.path.join(REAL, "aal.nii.txt"))
  assert np.count_nonzero(lut) == 116 and np.bincount(lut)[1:].tolist() == [
      28, 2, 12, 14, 14, 8, 12, 26]   # regions per lobe: frontal .. cerebellum (with vermis)
  source = _load("colin27")
  (train,), (val,) = source.train, source.val
  assert train.source_shape == (181, 217, 181) and train.image_path.endswith("ch2bet.nii.gz")
  assert set(np.unique(train.label)) == set(np.unique(val.label)) == set(range(9))
  mni = nib.load(val.image_path)
  assert mni.shape == val.source_shape == val.source_label.shape
  brain = np.asarray(mni.dataobj) > 0
  labelled = val.source_label > 0
  assert (labelled & brain).sum() / labelled.sum() > 0.9    # 0.946 measured
  assert [c.name for c in source.pretrain_cases] == [
      "colin27", "mni152", "ch2", "ch2better", "inia19-t1-brain"]
