"""Cross-subject brain segmentation offline: AAL lobes learnt on Colin27, scored on MNI152.

config.data.dataset "colin27" reads Debian's mricron-data (`apt-get install mricron-data`:
/usr/share/mricron/templates); "colin27:/folder" a folder with the same file names:
  ch2bet.nii.gz     Colin27 (Holmes et al. 1998), the MNI single-subject T1, brain-extracted;
                    181 x 217 x 181 at 1 mm in MNI space: the labelled training brain;
  aal.nii.gz        the AAL atlas (Tzourio-Mazoyer et al. 2002) on that grid: 116 grey-matter
                    regions, 0 elsewhere; drawn on this very scan;
  aal.nii.txt       "index name code" per region (AAL's codes, 2001 Precentral_L, ...);
  ch2.nii.gz, ch2better.nii.gz, inia19-t1-brain.nii.gz  (each optional) Colin27 with its scalp,
                    Colin27 at 0.5 mm, the INIA19 macaque template: unlabelled T1s;
and scores on the MNI152 2009a symmetric template shipped inside nilearn (the folder's own
mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz when it has one), a 152-subject average in the
same MNI space and brain-extracted like ch2bet, labelled with the same atlas carried over through
world coordinates (nearest neighbour): both brains are registered to MNI space, so one atlas
applies to both, exactly on Colin27 where it was drawn, to the registration's accuracy on MNI152.

The 116 regions are grouped into 8 lobes by the thousands digit of AAL's own codes (the atlas's
grouping, no table of ours): 2 frontal (with precentral, Rolandic operculum, SMA, olfactory,
rectus), 3 insula, 4 limbic (cingulum, hippocampus, parahippocampal, amygdala), 5 occipital (with
fusiform), 6 parietal (with postcentral, precuneus, paracentral), 7 deep grey nuclei (caudate,
putamen, pallidum, thalamus), 8 temporal (with Heschl and the temporal poles), 9 cerebellum
(with the vermis). Hemispheres are merged: a crop seldom sees the midline that tells them apart.

Lists for config.data.pretrain_splits: "training" (ch2bet), "validation" (the MNI152 image, its
labels never read by pretraining), "unlabelled" (the optional T1s present). Every image is
preprocessed as data/volumes.py's others (RAS, spacing, intensity, foreground crop).
"""

import os

import numpy as np
from scipy import ndimage

from mae_jax.data import volumes
from mae_jax.distributed import echo
from mae_jax.errors import ConfigError

COLIN27 = volumes.COLIN27      # "colin27", or "colin27:/folder"
DEFAULT_FOLDER = "/usr/share/mricron/templates"   # Debian's mricron-data
TRAIN_IMAGE, ATLAS, ATLAS_TABLE = "ch2bet.nii.gz", "aal.nii.gz", "aal.nii.txt"
UNLABELLED_IMAGES = ("ch2.nii.gz", "ch2better.nii.gz", "inia19-t1-brain.nii.gz")
MNI152_IN_FOLDER = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
UNLABELLED = "unlabelled"      # pretrain_splits' name of the optional T1s
# AAL code // 1000 -> lobe; class k + 1 is LOBES[k].
LOBE_DIGITS = (2, 3, 4, 5, 6, 7, 8, 9)
LOBES = ("frontal", "insula", "limbic", "occipital", "parietal", "deep_grey", "temporal",
         "cerebellum")
CLASSES = ("background",) + LOBES
_INSTALL = "apt-get install mricron-data"


def serves(dataset: str) -> bool:
  """Whether config.data.dataset names this source: "colin27" or "colin27:/folder"."""
  return dataset == COLIN27 or dataset.startswith(COLIN27 + ":")


def folder_of(dataset: str) -> str:
  """"colin27" -> Debian's folder; "colin27:/path" -> /path."""
  if dataset == COLIN27:
    return DEFAULT_FOLDER
  return os.path.expanduser(dataset.removeprefix(COLIN27 + ":"))


def read_lobe_table(path: str) -> np.ndarray:
  """aal.nii.txt ("index name code" lines, CRLF or LF) -> uint8 (256,) lookup: region index ->
  lobe class (1..8), 0 for the background; ConfigError naming the file for a line or code it
  cannot place."""
  lut = np.zeros(256, np.uint8)
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      fields = line.split()
      if not fields:
        continue
      try:
        index, code = int(fields[0]), int(fields[-1])
      except ValueError:
        raise ConfigError(f"{path}:{number}: {line.strip()!r} is not \"index name code\"") from None
      if not 0 < index < 256 or code // 1000 not in LOBE_DIGITS:
        raise ConfigError(f"{path}:{number}: region {index} has code {code}; AAL's codes start "
                          f"with a lobe digit in {LOBE_DIGITS}")
      lut[index] = LOBE_DIGITS.index(code // 1000) + 1
  return lut


def atlas_lobes(atlas: np.ndarray, lut: np.ndarray, atlas_path: str) -> np.ndarray:
  """AAL region indices (X, Y, Z) -> lobe classes uint8; ConfigError for an index the table
  lacks."""
  ids = np.rint(atlas).astype(np.int64)
  unknown = np.setdiff1d(np.unique(ids), np.concatenate([[0], np.flatnonzero(lut)]))
  if unknown.size:
    raise ConfigError(f"{atlas_path} has region {int(unknown[0])}, which {ATLAS_TABLE} does not "
                      "list")
  return lut[ids]


def to_grid(labels: np.ndarray, affine: np.ndarray, target_affine: np.ndarray,
            target_shape: tuple[int, ...]) -> np.ndarray:
  """uint8 labels (X, Y, Z) with voxel->world `affine` -> the grid of (target_affine,
  target_shape), nearest neighbour through world coordinates, 0 outside."""
  m = np.linalg.inv(affine) @ target_affine
  return ndimage.affine_transform(labels, m[:3, :3], offset=m[:3, 3], output_shape=target_shape,
                                  order=0, mode="grid-constant", cval=0, prefilter=False)


def _read(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(float32 (X, Y, Z, 1), affine) of a 3-D NIfTI."""
  image = volumes.nibabel_module().load(path)
  data = np.asarray(image.get_fdata(dtype=np.float32))
  if data.ndim != 3:
    raise ConfigError(f"{path}: a {data.ndim}-D image; {COLIN27} reads 3-D T1 volumes")
  return data[..., None], np.asarray(image.affine, np.float64)


def load_colin27(dataset: str, *, spacing: tuple[float, float, float], intensity: str,
                 intensity_range: tuple[float, float], num_classes: int,
                 pretrain_splits: tuple[str, ...]) -> volumes.VolumeSource:
  """The source of config.data.dataset "colin27[:/folder]" (the module docstring): ch2bet with
  AAL lobes to train on, MNI152 with the same atlas to score, the lists of pretrain_splits for
  pretraining; every image preprocessed as data/volumes.py's (spacing, intensity, its range).
  num_classes: 0 or 9."""
  prep = volumes.preprocessing(spacing, intensity, intensity_range)
  folder = folder_of(dataset)
  required = [os.path.join(folder, f) for f in (TRAIN_IMAGE, ATLAS, ATLAS_TABLE)]
  missing = [p for p in required if not os.path.isfile(p)]
  if missing:
    hint = f" ({_INSTALL})" if folder == DEFAULT_FOLDER else ""
    raise ConfigError(f"config.data.dataset={dataset!r}: {', '.join(missing)} missing{hint}")
  if num_classes not in (0, len(CLASSES)):
    raise ConfigError(f"config.data.num_classes={num_classes}: {COLIN27} has {len(CLASSES)} "
                      f"classes ({', '.join(CLASSES)}): set it to {len(CLASSES)} or 0")
  train_path, atlas_path, table_path = required
  mni_path = os.path.join(folder, MNI152_IN_FOLDER)
  if not os.path.isfile(mni_path):
    mni_path = volumes.mni152_paths(dataset)["t1"]
  unknown = [k for k in pretrain_splits
             if k not in (volumes.TRAINING, volumes.VALIDATION, UNLABELLED)]
  if unknown:
    echo(f"{COLIN27} has no list {', '.join(unknown)}: pretraining reads none of it (its lists: "
         f"{volumes.TRAINING}, {volumes.VALIDATION}, {UNLABELLED})")

  nib = volumes.nibabel_module()
  atlas_file = nib.load(atlas_path)
  lobes = atlas_lobes(np.asarray(atlas_file.dataobj), read_lobe_table(table_path), atlas_path)
  image, affine = _read(train_path)
  if lobes.shape != image.shape[:3]:
    raise ConfigError(f"{atlas_path} has shape {lobes.shape} but {train_path} has "
                      f"{image.shape[:3]}: the atlas must lie on the training brain's grid")
  volumes.check_same_grid(affine, atlas_file.affine, train_path, atlas_path)
  train = volumes.preprocess("colin27", image, lobes, affine, keep_source=False,
                             image_path=train_path, label_path=atlas_path, **prep)
  mni, mni_affine = _read(mni_path)
  mni_lobes = to_grid(lobes, np.asarray(atlas_file.affine, np.float64), mni_affine,
                      mni.shape[:3])
  # label_path "": the scored labels exist in memory only (carried over from the atlas).
  val = volumes.preprocess("mni152", mni, mni_lobes, mni_affine, keep_source=True,
                           image_path=mni_path, label_path="", **prep)
  lists = {volumes.TRAINING: [train], volumes.VALIDATION: [val], UNLABELLED: []}
  if UNLABELLED in pretrain_splits:
    present = [f for f in UNLABELLED_IMAGES if os.path.isfile(os.path.join(folder, f))]
    absent = [f for f in UNLABELLED_IMAGES if f not in present]
    if absent:
      echo(f"{folder} lacks {', '.join(absent)}: pretraining reads the T1s it has")
    lists[UNLABELLED] = [_unlabelled(os.path.join(folder, f), prep) for f in present]
  cases = [c for k in dict.fromkeys(pretrain_splits) for c in lists.get(k, [])]
  echo(f"preprocessed {2 + len(lists[UNLABELLED])} volumes")
  return volumes.VolumeSource(f"{COLIN27}:{folder}", len(CLASSES), CLASSES, 1, [train], [val],
                              cases)


def _unlabelled(path: str, prep: dict) -> volumes.Case:
  image, affine = _read(path)
  return volumes.preprocess(volumes.file_stem(path), image, None, affine, keep_source=False,
                            image_path=path, **prep)
