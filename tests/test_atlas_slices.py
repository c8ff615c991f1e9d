"""Brain slices with atlas lobes written as a segfolder (data/atlas_slices.py): on small generated
volumes in mricron-data's layout, and on the real files where `apt-get install mricron-data`
put them."""

import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from mae_jax.data import atlas_slices, colin27, seg_sources
from mae_jax.errors import UserError

# aal.nii.txt's "index name code" lines: one region of each lobe (codes' thousands digit).
TABLE = ("1 Precentral_L 2001\r\n29 Insula_L 3001\r\n31 Cingulum_Ant_L 4001\r\n"
         "43 Calcarine_L 5001\r\n57 Postcentral_L 6001\r\n71 Caudate_L 7001\r\n"
         "81 Temporal_Sup_L 8111\r\n91 Cerebelum_Crus1_L 9001\r\n")
REGIONS = np.array([1, 29, 31, 43, 57, 71, 81, 91], np.uint8)
MM = 6.0


def _grid(shape, origin):
  affine = np.diag([MM, MM, MM, 1.0])
  affine[:3, 3] = origin
  world = [(o + MM * np.arange(n)).reshape([-1 if a == k else 1 for a in range(3)])
           for k, (n, o) in enumerate(zip(shape, origin))]
  return affine, world


def _brain(world, size):
  """(T1 uint8, AAL ids): an ellipsoid, grey shell cut into one region per lobe by the angle
  in the y-z plane, white core; a bright spot at the front (high y) to check orientation."""
  x, y, z = (w / (size * r) for w, r in zip(world, (60.0, 80.0, 60.0)))
  r2 = x * x + y * y + z * z
  image = np.where(r2 < 1, np.where(r2 < 0.5, 110, 70), 0).astype(np.uint8)
  image = np.where((r2 < 1) & (y > 0.7), 250, image).astype(np.uint8)
  sector = ((np.arctan2(y, z) + np.pi) * (8 / (2 * np.pi))).astype(np.int64) % 8
  ids = np.where((r2 >= 0.5) & (r2 < 1), REGIONS[sector], 0).astype(np.uint8)
  return image, ids


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> str:
  root = tmp_path_factory.mktemp("templates")
  affine, world = _grid((22, 28, 22), (-63.0, -81.0, -63.0))
  image, ids = _brain(world, 1.0)
  nib.save(nib.Nifti1Image(image, affine), str(root / colin27.TRAIN_IMAGE))
  nib.save(nib.Nifti1Image(ids, affine), str(root / colin27.ATLAS))
  (root / colin27.ATLAS_TABLE).write_bytes(TABLE.encode())
  # MNI152 on its own, larger grid, a slightly larger brain: the atlas is carried over.
  mni_affine, mni_world = _grid((24, 30, 24), (-69.0, -87.0, -69.0))
  mni, _ = _brain(mni_world, 1.05)
  nib.save(nib.Nifti1Image(mni.astype(np.float32) * 4.0, mni_affine),
           str(root / colin27.MNI152_IN_FOLDER))
  return str(root)


def test_writes_a_segfolder_of_cross_brain_pairs(templates, tmp_path):
  out = str(tmp_path / "slices")
  counts = atlas_slices.write(out, f"colin27:{templates}", every=1, min_lobe_fraction=0.05)
  pairs = {s: seg_sources.folder_pairs(out, s) for s in ("training", "validation")}
  assert {s: len(p) for s, p in pairs.items()} == counts
  assert counts["training"] > 3 and counts["validation"] > 3
  assert all(os.path.basename(i).startswith("colin27_axial") for i, _ in pairs["training"])
  assert all(os.path.basename(i).startswith("mni152_axial") for i, _ in pairs["validation"])
  seen, fronts = set(), 0
  for image_path, label_path in pairs["training"] + pairs["validation"]:
    image, label = np.asarray(Image.open(image_path)), np.asarray(Image.open(label_path))
    # Axial slices of RAS volumes: rows run along y (anterior first), columns along x.
    assert image.dtype == label.dtype == np.uint8 and image.shape == label.shape
    assert label.min() >= 1 and label.max() <= 9          # 0 (ignored) never written
    assert np.mean(label > 1) >= 0.05
    seen |= set(np.unique(label).tolist())
    # The bright front of the brain, where a slice reaches it, is in the top rows.
    rows = np.flatnonzero((image == 255).any(axis=1))
    if rows.size:
      fronts += 1
      assert rows.max() < image.shape[0] / 2, image_path
  assert seen == set(range(1, 10)) and fronts >= 4
  lines = open(os.path.join(out, "classes.txt"), encoding="utf-8").read().splitlines()
  assert lines[0] == "1 background" and lines[-1] == "9 cerebellum" and len(lines) == 9


def test_slices_keep_every_nth_with_enough_lobe(templates):
  image = np.zeros((4, 5, 6), np.uint8)
  lobes = np.zeros((4, 5, 6), np.uint8)
  lobes[:, :, 2] = 3               # slice 2 all lobe, slice 4 a single voxel
  lobes[0, 0, 4] = 1
  kept = atlas_slices.slices(image, lobes, axis=2, every=1, min_lobe_fraction=0.5)
  assert [k for k, _, _ in kept] == [2]
  k, img, ann = kept[0]
  assert img.shape == ann.shape == (5, 4) and (ann == 4).all()
  assert [k for k, _, _ in atlas_slices.slices(image, lobes, 2, 2, 0.01)] == [2, 4]


def test_intensity_scaling_ignores_the_outside_and_clips():
  image = np.concatenate([np.zeros(100), np.linspace(10, 20, 1000)]).astype(np.float32)
  scaled = atlas_slices.to_uint8(image)
  assert scaled[:100].max() == 0 and scaled[-1] == 255 and 100 < np.median(scaled[100:]) < 155
  with pytest.raises(UserError, match="no voxel above 0"):
    atlas_slices.to_uint8(np.zeros(5, np.float32))


def test_bad_input_is_one_line(templates, tmp_path, capsys):
  with pytest.raises(UserError, match="ch2bet.nii.gz.*missing.*mricron-data"):
    atlas_slices.write(str(tmp_path / "a"), f"colin27:{tmp_path}")
  with pytest.raises(UserError, match="--axis='transverse'"):
    atlas_slices.write(str(tmp_path / "b"), f"colin27:{templates}", axis="transverse")
  with pytest.raises(UserError, match="lower --min_lobe_fraction"):
    atlas_slices.write(str(tmp_path / "c"), f"colin27:{templates}", min_lobe_fraction=0.99)
  with pytest.raises(SystemExit) as exit_info:
    atlas_slices.main([f"--out={tmp_path / 'd'}", f"--dataset=colin27:{tmp_path}"])
  assert str(exit_info.value).startswith("error: ") and "\n" not in str(exit_info.value)


@pytest.mark.skipif(not os.path.isfile(os.path.join(colin27.DEFAULT_FOLDER, colin27.ATLAS)),
                    reason="mricron-data is not installed")
def test_real_colin27_and_mni152_slices(tmp_path):
  counts = atlas_slices.write(str(tmp_path), "colin27", every=20)
  assert counts["training"] >= 4 and counts["validation"] >= 4
  for split in ("training", "validation"):
    labels = [np.asarray(Image.open(a)) for _, a in seg_sources.folder_pairs(str(tmp_path), split)]
    # Every lobe appears in some kept slice of each brain.
    assert set(np.unique(np.concatenate([l.ravel() for l in labels]))) == set(range(1, 10))
