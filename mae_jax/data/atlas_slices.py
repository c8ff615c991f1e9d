"""Real 2-D segmentation pairs from brain volumes and their atlas, written as a `segfolder:`.

  python -m mae_jax.data.atlas_slices --out=/data/brain_slices
  mae-jax --config=configs/brain_slices.py --config.data.dataset=segfolder:/data/brain_slices

Colin27's T1 with AAL's regions grouped into 8 lobes (data/colin27.py: the same files, the same
grouping) gives the training pairs; the MNI152 2009 template with the same atlas carried over
through world coordinates gives the validation pairs: a cross-subject task, learnt on one brain,
scored on a 152-subject average in the same space. Each kept slice is a greyscale PNG
(`images/<split>/<brain>_<axis><index>.png`, the T1 scaled to 0..255 between its brain's 1st and
99th intensity percentiles) and an annotation PNG of the same size (`annotations/<split>/...`):
1 for background (no AAL region: white matter, fluid, outside the brain), 2..9 for the lobes in
colin27.LOBES' order, so `config.data.num_classes=9`; 0 (ignored) is never written. A slice is
kept when its lobes cover at least `--min_lobe_fraction` of it. Slices are taken along one axis
of the RAS-reoriented volumes (`--axis`: axial, coronal or sagittal), every `--every`-th.

Why slices of volumes: no 2-D medical segmentation set installs offline, and these pairs are
real scans with expert labels (AAL was drawn on Colin27), unlike the generated digits_seg.
"""

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from mae_jax.data import colin27, volumes
from mae_jax.errors import UserError

AXES = {"sagittal": 0, "coronal": 1, "axial": 2}     # RAS voxel axes
SPLITS = {"training": "colin27", "validation": "mni152"}
CLASSES = colin27.CLASSES      # annotation value k + 1 is CLASSES[k]


def _canonical(path: str) -> tuple[np.ndarray, np.ndarray]:
  """A 3-D NIfTI reoriented to RAS -> (float32 (X, Y, Z), affine)."""
  nib = volumes.nibabel_module()
  image = nib.as_closest_canonical(nib.load(path))
  data = np.asarray(image.get_fdata(dtype=np.float32))
  if data.ndim != 3:
    raise UserError(f"{path}: a {data.ndim}-D image; atlas slices are cut from 3-D T1 volumes")
  return data, np.asarray(image.affine, np.float64)


def brains(dataset: str = colin27.COLIN27) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (T1 float32 (X, Y, Z), lobe classes uint8 (X, Y, Z), 0 background)} of the
  training brain (Colin27 with AAL) and the validation brain (MNI152, AAL carried over)."""
  folder = colin27.folder_of(dataset)
  paths = [os.path.join(folder, f) for f in (colin27.TRAIN_IMAGE, colin27.ATLAS,
                                             colin27.ATLAS_TABLE)]
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise UserError(f"{', '.join(missing)} missing: install mricron-data (apt-get install "
                    "mricron-data) or pass --dataset=colin27:/folder with the same file names")
  train_path, atlas_path, table_path = paths
  atlas, atlas_affine = _canonical(atlas_path)
  lobes = colin27.atlas_lobes(atlas, colin27.read_lobe_table(table_path), atlas_path)
  train, affine = _canonical(train_path)
  if train.shape != lobes.shape:
    raise UserError(f"{atlas_path} has shape {lobes.shape} but {train_path} has {train.shape}: "
                    "the atlas must lie on the training brain's grid")
  volumes.check_same_grid(affine, atlas_affine, train_path, atlas_path)
  mni_path = os.path.join(folder, colin27.MNI152_IN_FOLDER)
  if not os.path.isfile(mni_path):
    mni_path = volumes.mni152_paths(dataset)["t1"]
  mni, mni_affine = _canonical(mni_path)
  mni_lobes = colin27.to_grid(lobes, atlas_affine, mni_affine, mni.shape)
  return {"training": (train, lobes), "validation": (mni, mni_lobes)}


def to_uint8(image: np.ndarray) -> np.ndarray:
  """T1 (X, Y, Z) -> uint8: 0 at its non-zero voxels' 1st percentile, 255 at their 99th, so both
  brains' tissue contrasts land on the same grey levels whatever their scanners' units."""
  inside = image[image > 0]
  if inside.size == 0:
    raise UserError("a T1 volume with no voxel above 0: nothing to slice")
  low, high = np.percentile(inside, (1.0, 99.0))
  scaled = (image - low) / max(high - low, 1e-6) * 255.0
  return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def slices(image: np.ndarray, lobes: np.ndarray, axis: int, every: int,
           min_lobe_fraction: float) -> list[tuple[int, np.ndarray, np.ndarray]]:
  """uint8 (X, Y, Z) image and lobes -> [(index, image (H, W), annotation (H, W))] of every
  `every`-th slice along `axis` whose lobes cover at least `min_lobe_fraction` of it; H runs
  from the volume's top (superior / anterior) down, as radiologists view a slice."""
  out = []
  for k in range(0, image.shape[axis], every):
    img, lab = np.take(image, k, axis=axis), np.take(lobes, k, axis=axis)
    if np.mean(lab > 0) < min_lobe_fraction:
      continue
    # (first, second) remaining RAS axes -> rows from the second's top, columns along the first.
    out.append((k, np.ascontiguousarray(np.flipud(img.T)),
                np.ascontiguousarray(np.flipud(lab.T)) + np.uint8(1)))
  return out


def write(out: str, dataset: str = colin27.COLIN27, axis: str = "axial", every: int = 2,
          min_lobe_fraction: float = 0.02) -> dict[str, int]:
  """Writes the segfolder (module docstring) under `out`. -> {split: slices written}."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if axis not in AXES:
    raise UserError(f"--axis={axis!r}: one of {', '.join(AXES)}")
  if every < 1 or not 0 <= min_lobe_fraction < 1:
    raise UserError("--every: a whole number >= 1; --min_lobe_fraction: in [0, 1)")
  counts = {}
  for split, (image, lobes) in brains(dataset).items():
    name = SPLITS[split]
    kept = slices(to_uint8(image), lobes, AXES[axis], every, min_lobe_fraction)
    if not kept:
      raise UserError(f"no {axis} slice of {name} has lobes over {min_lobe_fraction:.0%} of it: "
                      "lower --min_lobe_fraction")
    for sub in ("images", "annotations"):
      os.makedirs(os.path.join(out, sub, split), exist_ok=True)
    for k, img, ann in kept:
      stem = f"{name}_{axis}{k:03d}"
      Image.fromarray(img).save(os.path.join(out, "images", split, stem + ".png"))
      Image.fromarray(ann).save(os.path.join(out, "annotations", split, stem + ".png"))
    counts[split] = len(kept)
  with open(os.path.join(out, "classes.txt"), "w", encoding="utf-8") as f:
    f.write("".join(f"{k + 1} {c}\n" for k, c in enumerate(CLASSES)))
  return counts


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m mae_jax.data.atlas_slices", description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True, help="the segfolder to write")
  parser.add_argument("--dataset", default=colin27.COLIN27,
                      help="colin27 (Debian's mricron-data) or colin27:/folder")
  parser.add_argument("--axis", default="axial", help=", ".join(AXES))
  parser.add_argument("--every", type=int, default=2, help="keep every n-th slice (default 2)")
  parser.add_argument("--min_lobe_fraction", type=float, default=0.02,
                      help="the least share of a slice its lobes must cover (default 0.02)")
  args = parser.parse_args(argv)
  try:
    counts = write(args.out, args.dataset, args.axis, args.every, args.min_lobe_fraction)
  except UserError as err:
    sys.exit(f"error: {err}")
  print(f"wrote {counts['training']} training (Colin27) and {counts['validation']} validation "
        f"(MNI152) {args.axis} slices with {len(CLASSES)} classes to {args.out}: "
        f"--config.data.dataset=segfolder:{args.out} --config.data.num_classes={len(CLASSES)}")


if __name__ == "__main__":
  main()
