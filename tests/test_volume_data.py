"""3-D volumes: NIfTI datasets in their real layouts (generated here), preprocessing, crops,
augmentation, and sliding-window blending checked against MONAI."""

import json
import os

import nibabel as nib
import numpy as np
import pytest

from mae_jax import sliding_window
from mae_jax.data import volumes
from mae_jax.errors import ConfigError

SHAPE = (24, 20, 12)
ZOOMS = (1.5, 1.0, 2.5)
BODY = (slice(3, 20), slice(2, 17), slice(2, 10))   # voxels above the CT window's floor
WINDOW = (-175.0, 250.0)
LABELS = {"0": "background", "1": "spleen", "2": "liver"}


def _lps(zooms=ZOOMS, shift=(20.0, 15.0, -30.0)) -> np.ndarray:
  """A DICOM-like affine: the first two voxel axes run towards L and P (RAS x, y decrease)."""
  a = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])
  a[:3, 3] = shift
  return a


def _permuted(zooms=ZOOMS) -> np.ndarray:
  """Voxel axes stored as (A->P, R->L, I->S): a transposition as well as flips to undo. In RAS
  its voxels measure `zooms`, like _lps's."""
  a = np.zeros((4, 4))
  a[1, 0], a[0, 1], a[2, 2], a[3, 3] = -zooms[1], -zooms[0], zooms[2], 1.0
  a[:3, 3] = (5.0, -7.0, 12.0)
  return a


def _ct(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
  """(image HU int16, label uint8): air around a box-shaped body holding two organs."""
  rng = np.random.default_rng(seed)
  image = np.full(shape, -1000, np.int16)
  image[BODY] = rng.integers(-120, 400, size=image[BODY].shape)
  label = np.zeros(shape, np.uint8)
  label[5:11, 4:9, 3:7] = 1
  label[12:18, 9:15, 5:9] = 2
  return image, label


def _save(path: str, data: np.ndarray, affine: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  nib.save(nib.Nifti1Image(data, affine), path)


def _btcv(root, *, affines=(_lps(), _permuted(), _lps()), val=(2,), edit=None,
          unlabelled=0) -> str:
  """A BTCV folder: imagesTr/img000k, labelsTr/label000k, dataset_0.json; returns "btcv:root".
  `unlabelled` scans imagesTs/img0061... listed under "test" as BTCV lists them (bare paths)."""
  entries = []
  tests = []
  for k in range(61, 61 + unlabelled):
    image, _ = _ct(k)
    tests.append(f"imagesTs/img{k:04d}.nii.gz")
    _save(os.path.join(root, tests[-1]), image, _lps())
  for k, affine in enumerate(affines, start=1):
    image, label = _ct(k)
    image_rel, label_rel = f"imagesTr/img{k:04d}.nii.gz", f"labelsTr/label{k:04d}.nii.gz"
    _save(os.path.join(root, image_rel), image, affine)
    _save(os.path.join(root, label_rel), label, affine)
    entries.append({"image": image_rel, "label": label_rel})
  meta = {"labels": LABELS, "training": [e for i, e in enumerate(entries) if i not in val],
          "validation": [e for i, e in enumerate(entries) if i in val]}
  if tests:
    meta["test"] = tests
  if edit:
    edit(meta)
  with open(os.path.join(root, "dataset_0.json"), "w", encoding="utf-8") as f:
    json.dump(meta, f)
  return f"btcv:{root}"


def _load(dataset: str, spacing=ZOOMS, **kw) -> volumes.VolumeSource:
  args = dict(spacing=spacing, intensity="window", intensity_range=WINDOW, num_classes=0,
              val_fraction=0.2, seed=0)
  return volumes.load_volumes(dataset, **{**args, **kw})


def _world(affine: np.ndarray, idx: np.ndarray) -> np.ndarray:
  return idx @ affine[:3, :3].T + affine[:3, 3]


# ---- BTCV ---------------------------------------------------------------------------------------

def test_btcv_at_file_spacing_is_ras_windowed_and_cropped_to_the_body(tmp_path):
  source = _load(_btcv(str(tmp_path)))
  assert (source.num_classes, source.class_names) == (3, ("background", "spleen", "liver"))
  assert source.in_channels == 1 and source.name == f"btcv:{tmp_path}"
  assert [c.name for c in source.train] == ["img0001", "img0002"]
  assert [c.name for c in source.val] == ["img0003"]
  assert source.train[0].source_label is None and source.val[0].source_label is not None
  for k, case in enumerate(source.train + source.val, start=1):
    raw_image, raw_label = _ct(k)
    file_affine = nib.load(case.image_path).affine
    body = BODY
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
    assert case.image.shape == (*case.label.shape, 1)
    # The crop is the body: its corners are the body's extreme voxel centres, in RAS.
    corners = _world(file_affine, np.array([[s.start, s.stop - 1] for s in body]).T)
    ras_corners = _world(case.affine, np.array([[0, 0, 0], np.array(case.label.shape) - 1]))
    np.testing.assert_allclose(ras_corners, [corners.min(0), corners.max(0)], atol=1e-6)
    assert nib.aff2axcodes(case.affine) == ("R", "A", "S")
    assert sorted(case.image.shape[:3]) == sorted(np.array([17, 15, 8]))
    # The window maps -175..250 HU onto 0..1, clipping outside.
    expected = np.clip((raw_image[body].astype(np.float32) + 175) / 425, 0, 1)
    np.testing.assert_allclose(np.sort(case.image.ravel()), np.sort(expected.ravel()), atol=1e-6)
    assert np.bincount(case.label.ravel(), minlength=3).tolist() == np.bincount(
        raw_label[body].ravel(), minlength=3).tolist()
    # Only orientation and crop to undo: the file's label comes back exactly.
    np.testing.assert_array_equal(volumes.to_source_grid(case, case.label), raw_label)
    assert case.source_shape == SHAPE
    np.testing.assert_allclose(case.source_affine, file_affine)


def test_btcv_resampled_to_a_spacing_keeps_world_positions(tmp_path):
  source = _load(_btcv(str(tmp_path)), spacing=(2.0, 2.0, 2.0))
  for case in source.train + source.val:
    np.testing.assert_allclose(np.linalg.norm(case.affine[:3, :3], axis=0), 2.0)
    raw_label = np.asarray(nib.load(case.label_path).dataobj)
    back = volumes.to_source_grid(case, case.label)
    assert back.shape == SHAPE and back.dtype == np.uint8
    assert (back == raw_label).mean() > 0.95
    assert set(np.unique(case.label)) == {0, 1, 2}
  # 24 x 1.5 mm, 20 x 1 mm, 12 x 2.5 mm before the crop -> 18, 10, 15 voxels of 2 mm.
  body_mm = np.array([17 * 1.5, 15 * 1.0, 8 * 2.5])
  for n, mm in zip(sorted(source.val[0].image.shape[:3]), sorted(body_mm / 2)):
    assert abs(n - mm) <= 1


def test_max_cases_and_num_classes_given(tmp_path):
  source = _load(_btcv(str(tmp_path)), max_cases=1, num_classes=3)
  assert (len(source.train), len(source.val)) == (1, 1)
  assert source.class_names == ("background", "spleen", "liver")


def test_num_classes_must_match_the_json_labels(tmp_path):
  # configs/btcv.py fixes 14 classes; a 4-class folder in BTCV's layout must not take them.
  four = {**LABELS, "3": "kidney"}
  dataset = _btcv(str(tmp_path), edit=lambda m: m.update(labels=four))
  json_path = os.path.join(str(tmp_path), "dataset_0.json")
  with pytest.raises(ConfigError) as err:
    _load(dataset, num_classes=14)
  message = str(err.value)
  assert message.startswith(f"{json_path} lists 4 \"labels\" but config.data.num_classes=14")
  assert "set config.data.num_classes to 4, or to 0" in message and "\n" not in message
  for num_classes in (0, 4):
    source = _load(dataset, num_classes=num_classes, max_cases=1)
    assert source.num_classes == 4 and source.class_names[3] == "kidney"


@pytest.mark.parametrize("splits", [("training", "test"), ("test", "training", "test")])
def test_btcv_pretraining_reads_the_test_scans_and_segmentation_does_not(tmp_path, splits):
  source = _load(_btcv(str(tmp_path), unlabelled=2), pretrain_splits=splits)
  names = lambda cases: [c.name for c in cases]  # noqa: E731
  expected = ["img0001", "img0002", "img0061", "img0062"]
  assert sorted(names(source.pretrain_cases)) == expected
  assert (names(source.train), names(source.val)) == (["img0001", "img0002"], ["img0003"])
  for case in (c for c in source.pretrain_cases if c.name.startswith("img006")):
    assert case.label is None and case.source_label is None and case.image.shape[-1] == 1
    assert case.image_path.endswith(os.path.join("imagesTs", f"{case.name}.nii.gz"))
  assert "pretraining reads 4 volumes, 2 of them unlabelled" in source.describe()
  # What the segmentation stages read: the labelled cases alone.
  labelled = source.labelled()
  assert names(labelled.pretrain_cases) == names(labelled.train) == ["img0001", "img0002"]
  assert "unlabelled" not in labelled.describe()
  # The scored volumes are pretrained on only when asked for; each scan once.
  source = _load(_btcv(str(tmp_path / "b"), unlabelled=1, edit=lambda m: m["test"].append(
      m["validation"][0]["image"])), pretrain_splits=("training", "test", "validation"))
  assert names(source.pretrain_cases) == ["img0001", "img0002", "img0061", "img0003"]


def test_a_list_the_json_lacks_is_skipped_in_one_line(tmp_path, capsys):
  dataset = _btcv(str(tmp_path))
  source = _load(dataset, pretrain_splits=("training", "test"))
  assert [c.name for c in source.pretrain_cases] == ["img0001", "img0002"]
  lines = [l for l in capsys.readouterr().out.splitlines() if "\"test\"" in l]
  assert lines == [f"{tmp_path}/dataset_0.json has no \"test\" list: pretraining reads no scans "
                   "of it (config.data.pretrain_splits)"]


def test_a_missing_test_scan_is_an_error_naming_it(tmp_path):
  # The JSON lists imagesTs/ but the folder was not downloaded: MONAI's LoadImaged would fail too.
  dataset = _btcv(str(tmp_path), unlabelled=2)
  os.remove(os.path.join(str(tmp_path), "imagesTs", "img0062.nii.gz"))
  with pytest.raises(ConfigError) as err:
    _load(dataset, pretrain_splits=("training", "test"))
  message = str(err.value)
  assert message.startswith(f"{tmp_path}/dataset_0.json: \"test\" lists imagesTs/img0062.nii.gz, "
                            f"but {tmp_path}/imagesTs/img0062.nii.gz does not exist")
  assert "--config.data.pretrain_splits=training" in message and "\n" not in message
  assert len(_load(dataset, max_cases=1).pretrain_cases) == 1      # not asked for: not read


# ---- MSD ----------------------------------------------------------------------------------------

def _msd(root, n=5) -> str:
  entries = []
  rng = np.random.default_rng(0)
  for k in range(n):
    image = np.zeros((*SHAPE, 2), np.float32)    # two MRI sequences, zero outside the head
    image[BODY] = rng.uniform(10, 500, size=(*image[BODY].shape[:3], 2)) * [1, 3]
    label = np.zeros(SHAPE, np.uint8)
    label[6:12, 5:10, 4:8] = 1
    image_rel, label_rel = f"./imagesTr/la_{k:03d}.nii.gz", f"./labelsTr/la_{k:03d}.nii.gz"
    _save(os.path.join(root, image_rel), image, _lps())
    _save(os.path.join(root, label_rel), label, _lps())
    entries.append({"image": image_rel, "label": label_rel})
  meta = {"labels": {"0": "background", "1": "left atrium"}, "modality": {"0": "T1", "1": "T2"},
          "training": entries, "test": ["./imagesTs/la_100.nii.gz"]}
  with open(os.path.join(root, "dataset.json"), "w", encoding="utf-8") as f:
    json.dump(meta, f)
  return f"msd:{root}"


def test_msd_holds_out_a_seeded_fraction_and_keeps_channels(tmp_path):
  dataset = _msd(str(tmp_path))
  source = _load(dataset, intensity="zscore", val_fraction=0.4, seed=3)
  names = [c.name for c in source.train], [c.name for c in source.val]
  assert (len(names[0]), len(names[1])) == (3, 2)
  assert sorted(names[0] + names[1]) == [f"la_{k:03d}" for k in range(5)]
  again = _load(dataset, intensity="zscore", val_fraction=0.4, seed=3)
  assert [c.name for c in again.val] == names[1]
  assert source.in_channels == 2 and source.class_names == ("background", "left atrium")
  case = source.train[0]
  assert case.image.shape == (17, 15, 8, 2)
  for c in range(2):   # z-scored per channel over the nonzero voxels
    values = case.image[..., c][case.image[..., c] != 0]
    assert abs(values.mean()) < 1e-4 and abs(values.std() - 1) < 1e-4
  one = _load(dataset, intensity="zscore", val_fraction=0.01, seed=0)
  assert len(one.val) == 1
  # Its "test" list names imagesTs/la_100, which this folder lacks.
  with pytest.raises(ConfigError, match=r"\"test\" lists \./imagesTs/la_100\.nii\.gz"):
    _load(dataset, intensity="zscore", pretrain_splits=("training", "test"))


# ---- errors a user fixes ------------------------------------------------------------------------

def _rewrite_label(root, data=None, affine=None):
  path = os.path.join(root, "labelsTr", "label0001.nii.gz")
  old = nib.load(path)
  _save(path, np.asarray(old.dataobj) if data is None else data,
        old.affine if affine is None else affine)


@pytest.mark.parametrize("problem, message", [
    ("shape", "label0001.nii.gz has shape"),
    ("affine", "label0001.nii.gz and its image"),
    ("too_large", "label0001.nii.gz has label value 3 but config.data.num_classes=3"),
    ("fraction", "label0001.nii.gz has label value 0.5"),
    ("missing", "dataset_0.json: \"training\" lists imagesTr/img0009.nii.gz"),
    ("empty", "dataset_0.json: the \"validation\" list is empty"),
])
def test_bad_inputs_raise_config_errors_naming_the_file(tmp_path, problem, message):
  root = str(tmp_path)
  edit = {"missing": lambda m: m["training"].append({"image": "imagesTr/img0009.nii.gz",
                                                     "label": "labelsTr/label0009.nii.gz"}),
          "empty": lambda m: m.update(validation=[])}.get(problem)
  dataset = _btcv(root, edit=edit)
  _, label = _ct(1)
  if problem == "shape":
    _rewrite_label(root, data=label[:, :, :-1])
  elif problem == "affine":
    _rewrite_label(root, affine=_lps(shift=(21.0, 15.0, -30.0)))
  elif problem == "too_large":
    label[8, 8, 5] = 3
    _rewrite_label(root, data=label)
  elif problem == "fraction":
    _rewrite_label(root, data=label.astype(np.float32) * 0.5)
  with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as err:
    _load(dataset)
  assert "\n" not in str(err.value)


def test_unknown_dataset_and_uncounted_classes(tmp_path):
  with pytest.raises(ConfigError, match="config.data.dataset"):
    _load("nifti:/nowhere")
  with pytest.raises(ConfigError, match="dataset_0.json does not exist"):
    _load(f"btcv:{tmp_path}/nowhere")
  dataset = _btcv(str(tmp_path), edit=lambda m: m.pop("labels"))
  with pytest.raises(ConfigError, match="config.data.num_classes"):
    _load(dataset)


# ---- writing predictions ------------------------------------------------------------------------

def test_write_label_nifti_round_trip(tmp_path):
  labels = np.random.default_rng(0).integers(0, 14, size=(7, 5, 3)).astype(np.int64)
  path = volumes.write_label_nifti(str(tmp_path / "out" / "img0035.nii.gz"), labels, _lps())
  written = nib.load(path)
  assert written.get_data_dtype() == np.uint8
  np.testing.assert_array_equal(np.asarray(written.dataobj), labels)
  np.testing.assert_allclose(written.get_sform(), _lps())
  np.testing.assert_allclose(written.get_qform(), _lps(), atol=1e-5)
  assert int(written.header["sform_code"]) == 1 and int(written.header["qform_code"]) == 1


# ---- crops and augmentation ---------------------------------------------------------------------

def _case(shape=(32, 32, 32), label=True) -> volumes.Case:
  image = np.ones((*shape, 1), np.float32)
  lab = np.zeros(shape, np.uint8)
  lab[14:18, 14:18, 14:18] = 1     # a small organ in the middle, far from the borders
  return volumes.Case("c", image, lab if label else None, np.eye(4), np.eye(4), shape,
                      None, "", "")


def test_random_crops_balance_foreground_and_background():
  case, roi = _case(), (8, 8, 8)
  rng = np.random.default_rng(0)
  images, labels = volumes.random_crops(case, roi, 50, rng, pos=1, neg=0)
  assert images.shape == (50, 8, 8, 8, 1) and labels.shape == (50, 8, 8, 8)
  assert images.dtype == np.float32 and labels.dtype == np.uint8
  assert all(labels[n].any() for n in range(50))
  assert (labels[:, 4, 4, 4] == 1).all()    # an interior foreground centre stays the centre
  _, labels = volumes.random_crops(case, roi, 50, rng, pos=0, neg=1)
  assert (labels[:, 4, 4, 4] == 0).all()
  _, labels = volumes.random_crops(case, roi, 400, rng, pos=1, neg=1)
  share = (labels[:, 4, 4, 4] == 1).mean()
  assert 0.4 < share < 0.6


def test_random_crops_pad_small_cases_and_crop_unlabeled_uniformly():
  case = _case(shape=(10, 20, 20))
  images, labels = volumes.random_crops(case, (16, 8, 8), 6, np.random.default_rng(1))
  assert images.shape == (6, 16, 8, 8, 1) and labels.shape == (6, 16, 8, 8)
  # 6 zero slices split 3 before, 3 after (MONAI SpatialPad symmetric).
  assert images[:, :3].max() == 0 and images[:, 13:].max() == 0 and images[:, 3:13].min() == 1
  images, labels = volumes.random_crops(_case(label=False), (8, 8, 8), 5,
                                        np.random.default_rng(2))
  assert images.shape == (5, 8, 8, 8, 1) and labels is None


def test_random_crops_background_from_a_list_when_background_is_rare():
  case = _case()
  case.label[:] = 1
  case.label[0:3, 0:3, 0:3] = 0    # 27 background voxels of 32768: below the rejection floor
  _, labels = volumes.random_crops(case, (8, 8, 8), 20, np.random.default_rng(0), pos=0)
  assert (labels == 0).any(axis=(1, 2, 3)).all()


def test_augment_keeps_image_and_label_aligned():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, size=(6, 8, 8, 5)).astype(np.uint8)
  images = np.stack([labels, 2 * labels], axis=-1).astype(np.float32)
  out, out_labels = volumes.augment(images, labels, rng, flip_prob=0.5, rot90_prob=0.5,
                                    intensity_prob=0.0, intensity_factor=0.1)
  np.testing.assert_array_equal(out[..., 0], out_labels)
  np.testing.assert_array_equal(out[..., 1], 2 * out_labels)
  assert not np.array_equal(out_labels, labels)       # something moved
  # A rotation in the (X, Y) plane needs X == Y: here never, and shapes stay.
  flat = rng.random((3, 8, 6, 4, 1)).astype(np.float32)
  out, none = volumes.augment(flat, None, rng, flip_prob=0.0, rot90_prob=1.0,
                              intensity_prob=0.0, intensity_factor=0.1)
  assert none is None and np.array_equal(out, flat)
  # Intensities: x * (1 + U(-f, f)) + U(-f, f), one draw per crop.
  out, _ = volumes.augment(flat, None, rng, flip_prob=0.0, rot90_prob=0.0,
                           intensity_prob=1.0, intensity_factor=0.1)
  assert np.all(np.abs(out - flat) <= 0.1 * np.abs(flat) * 1.1 + 0.1 + 1e-6)
  assert not np.allclose(out, flat)


# ---- sliding window -----------------------------------------------------------------------------

def test_window_starts_follow_monai_scan():
  assert sliding_window.window_starts((10,), (4,), 0.5) == [(0,), (2,), (4,), (6,)]
  assert sliding_window.window_starts((10,), (4,), 0.25) == [(0,), (3,), (6,)]
  assert sliding_window.window_starts((10, 4), (4, 4), 0.25) == [(0, 0), (3, 0), (6, 0)]


@pytest.mark.parametrize("overlap", [0.25, 0.5])
@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_blender_matches_monai_sliding_window_inference(overlap, mode):
  torch = pytest.importorskip("torch")
  inferers = pytest.importorskip("monai.inferers")
  torch.manual_seed(0)
  # Zero padding makes a window's border logits differ from its neighbour's interior ones.
  conv = torch.nn.Conv3d(2, 3, kernel_size=3, padding=1)
  image = np.random.default_rng(0).normal(size=(21, 9, 17, 2)).astype(np.float32)
  roi = (12, 14, 8)                # the volume is smaller than roi along Y
  with torch.no_grad():
    expected = inferers.sliding_window_inference(
        torch.from_numpy(image).permute(3, 0, 1, 2)[None], roi, 4, conv, overlap=overlap,
        mode=mode)[0].permute(1, 2, 3, 0).numpy()
    blender = sliding_window.Blender(image.shape[:3], roi, overlap, 3, mode=mode)
    padded = blender.pad(image)
    for i in range(len(blender.starts)):
      window = torch.from_numpy(np.ascontiguousarray(blender.window(padded, i)))
      assert not blender.done()
      blender.add(i, conv(window.permute(3, 0, 1, 2)[None])[0].permute(1, 2, 3, 0).numpy())
  assert blender.done()
  result = blender.result()
  assert result.shape == (21, 9, 17, 3) and result.dtype == np.float32
  np.testing.assert_allclose(result, expected, atol=1e-5)


def test_importance_map_matches_monai():
  pytest.importorskip("torch")
  data_utils = pytest.importorskip("monai.data.utils")
  for roi in [(12, 14, 8), (5, 6, 7)]:
    expected = data_utils.compute_importance_map(roi, mode="gaussian").numpy()
    np.testing.assert_allclose(sliding_window.importance_map(roi), expected, rtol=1e-5)
  assert (sliding_window.importance_map((3, 4, 5), "constant") == 1).all()


# ---- the offline MNI152 demo --------------------------------------------------------------------

def test_mni152_two_halves_either_side_of_the_midline():
  pytest.importorskip("nilearn")
  source = _load("mni152", spacing=(3.0, 3.0, 3.0), intensity_range=(0.0, 255.0))
  assert source.class_names == ("background", "grey_matter", "white_matter")
  assert (source.num_classes, source.in_channels) == (3, 1)
  (left,), (right,) = source.train, source.val
  assert (left.name, right.name) == ("mni152_left", "mni152_right")
  for case, side in ((left, -1), (right, 1)):
    assert set(np.unique(case.label)) == {0, 1, 2}
    corners = _world(case.affine, np.array([[0, 0, 0], np.array(case.label.shape) - 1]))
    assert (side * corners[:, 0] >= 0).all()     # x < 0 is the left hemisphere in RAS
    assert case.source_label.shape == case.source_shape
    back = volumes.to_source_grid(case, case.label)
    assert back.shape == case.source_shape
    assert (back == case.source_label).mean() > 0.9
  assert left.source_shape[1:] == right.source_shape[1:] == (233, 189)
  assert left.source_shape[0] + right.source_shape[0] == 197
