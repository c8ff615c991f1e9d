"""3-D medical volumes (NIfTI) for volumetric segmentation: reading, preprocessing, crops.

`load_volumes(dataset, ...)` (config.data.dataset) takes
  * "btcv:/root": MONAI's BTCV layout, root/dataset_0.json with "training" and "validation"
    lists of {"image": "imagesTr/img0001.nii.gz", "label": "labelsTr/label0001.nii.gz"} and
    "labels" ({"0": "background", "1": "spleen", ...}); the split is the JSON's; its "test"
    list names the unlabelled scans (imagesTs/img0061.nii.gz, ...);
  * "msd:/root": the Medical Segmentation Decathlon layout, root/dataset.json with "training"
    (paths like "./imagesTr/la_003.nii.gz") and "labels"; a seeded `val_fraction` of it is
    held out; 4-D images (X, Y, Z, C) keep their channels; "test" lists unlabelled scans;
  * "mni152": the offline demo, the MNI152 2009 T1 template shipped inside nilearn, labelled
    background / grey matter / white matter from its tissue probability maps and cut at the
    mid-sagittal plane into a left (training) and a right (validation) half;
  (data/colin27.py serves "colin27[:/folder]", AAL lobes across brains, with this module's
  reading and preprocessing; tasks/volumes.py picks the loader.)
`pretrain_splits` names the JSON's lists whose scans pretraining reads: "training" and
"validation" are those cases (for msd: its training and held-out ones), any other list ("test")
is loaded without labels for pretraining alone (VolumeSource.pretrain); a list the JSON lacks is
skipped with one line, a listed file that is missing is an error naming it.
Every case is preprocessed once, in memory, as MONAI's BTCV recipe does per epoch: RAS
orientation, resampling to `spacing` mm, intensity scaling, foreground crop. Arrays are channels
last: images float32 (X, Y, Z, C), labels uint8 (X, Y, Z), X/Y/Z along R/A/S.
"""

import dataclasses
import importlib.util
import json
import os

import numpy as np
from scipy import ndimage

from mae_jax.data.base import split_size
from mae_jax.distributed import echo
from mae_jax.errors import ConfigError

BTCV, MSD, MNI152, COLIN27 = "btcv:", "msd:", "mni152", "colin27"
TRAINING, VALIDATION = "training", "validation"   # pretrain_splits' names of the labelled lists
INTENSITY_MODES = ("window", "zscore")
_JSON = {BTCV: "dataset_0.json", MSD: "dataset.json"}
_INSTALL = "pip install '.[volumes]'"
# Voxel sizes (mm) within this fraction of the target spacing are not resampled: header floats
# (0.7421875 stored as 0.74218749) should not cost an interpolation of every voxel.
_SPACING_RTOL = 1e-4
# Two grids are the same when their affines agree to this fraction of a voxel.
_AFFINE_TOL = 1e-3
# Below this background fraction, random_crops keeps a list of background voxels instead of
# drawing candidates until one is background.
_MIN_REJECTION_FRACTION = 0.05
_MNI152_FILES = {k: f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz"
                 for k in ("t1", "gm", "wm")}
MNI152_CLASSES = ("background", "grey_matter", "white_matter")


@dataclasses.dataclass(frozen=True)
class Case:
  """One preprocessed volume."""
  name: str                 # the image file's name less .nii/.nii.gz; predictions: f"{name}.nii.gz"
  image: np.ndarray         # float32 (X, Y, Z, C): RAS, resampled, intensity-scaled, cropped
  label: np.ndarray | None  # uint8 (X, Y, Z) on the same grid, or None (unlabeled)
  affine: np.ndarray        # (4, 4) voxel->world of the preprocessed (cropped) grid
  source_affine: np.ndarray  # (4, 4) of the image file as stored
  source_shape: tuple[int, int, int]  # the image file's spatial shape
  source_label: np.ndarray | None     # uint8 label on the file's own grid (validation only)
  image_path: str
  label_path: str
  # random_crops' per-roi padded arrays and foreground/background voxel lists, filled lazily.
  _crop_cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                        compare=False)


@dataclasses.dataclass(frozen=True)
class VolumeSource:
  """Preprocessed training and validation cases; a base.DataSource whose examples are
  volumes."""
  name: str                 # e.g. "btcv:/path"
  num_classes: int          # including background
  class_names: tuple[str, ...]
  in_channels: int
  train: list[Case]
  val: list[Case]
  # What pretraining reads (load_volumes' pretrain_splits), labelled or not; None = `train`.
  # The segment3d stages read `train` and `val` alone, from `labelled()`.
  pretrain: list[Case] | None = None

  @property
  def pretrain_cases(self) -> list[Case]:
    """The volumes pretraining reads: `pretrain`, or the training volumes."""
    return self.train if self.pretrain is None else self.pretrain

  def labelled(self) -> "VolumeSource":
    """This source without its pretraining-only scans: what the segmentation stages read."""
    return dataclasses.replace(self, pretrain=None)

  @property
  def splits(self) -> tuple[str, ...]:
    """("train", "val") (base.DataSource)."""
    return ("train", "val")

  @property
  def split_sizes(self) -> dict[str, int]:
    """split -> its number of volumes (base.DataSource)."""
    return {"train": len(self.train), "val": len(self.val)}

  @property
  def train_split(self) -> str:
    return "train"

  def num_examples(self, split: str) -> int:
    """Volumes in `split`; ValueError naming the splits if there is none."""
    return split_size(self.name, self.split_sizes, split)

  def train_classes(self) -> None:
    """None: a volume holds many classes, so subsets are drawn without strata."""
    return None

  def examples_for_batch(self, batch_size: int) -> int:
    """The fewest training examples a batch needs: crops of one volume fill it
    (base.Selectable)."""
    return 1

  def view(self, train: np.ndarray, heldout: np.ndarray | None = None) -> "VolumeSource":
    """These training volumes (sorted indices) and, with `heldout`, those training volumes
    as the validation split (base.Selectable)."""
    return dataclasses.replace(
        self, train=[self.train[i] for i in train],
        val=self.val if heldout is None else [self.train[i] for i in heldout])

  def describe(self) -> str:
    """Volumes, classes and channels, for the log (base.DataSource)."""
    text = (f"{len(self.train)} training / {len(self.val)} validation volumes, "
            f"{self.num_classes} classes ({', '.join(self.class_names)}), "
            f"{self.in_channels} channel(s)")
    if [id(c) for c in self.pretrain_cases] == [id(c) for c in self.train]:
      return text
    labelled = {id(c) for c in self.train + self.val}
    only = sum(id(c) not in labelled for c in self.pretrain_cases)
    return (f"{text}; pretraining reads {len(self.pretrain_cases)} volumes, {only} of them "
            "unlabelled (pretraining only)")


def preprocessing(spacing: tuple[float, float, float], intensity: str,
                  intensity_range: tuple[float, float]) -> dict:
  """`preprocess`'s spacing, intensity and intensity_range from config.data's; a ConfigError for
  an intensity mode it lacks."""
  if intensity not in INTENSITY_MODES:
    raise ConfigError(f"config.data.intensity: {intensity!r} is not one of {INTENSITY_MODES}")
  return dict(spacing=tuple(float(s) for s in spacing), intensity=intensity,
              intensity_range=tuple(float(r) for r in intensity_range))


def nibabel_module():
  """nibabel, or a ConfigError saying how to install it."""
  try:
    import nibabel  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ConfigError(f"reading NIfTI volumes needs nibabel: {_INSTALL}") from e
  return nibabel


# ---- datasets -----------------------------------------------------------------------------------

def load_volumes(dataset: str, *, spacing: tuple[float, float, float], intensity: str,
                 intensity_range: tuple[float, float], num_classes: int, val_fraction: float,
                 seed: int, max_cases: int = 0,
                 pretrain_splits: tuple[str, ...] = (TRAINING,)) -> VolumeSource:
  """The preprocessed cases of config.data.dataset (see the module docstring).

  num_classes 0 takes the JSON's "labels", any other count must equal theirs; max_cases > 0 keeps
  the first max_cases of each split (and of each pretraining-only list). pretrain_splits: the
  lists whose scans pretraining reads (module docstring).
  """
  prep = preprocessing(spacing, intensity, intensity_range)
  pretrain_splits = tuple(dict.fromkeys(pretrain_splits))   # each list once, in order
  if dataset == MNI152:
    # One case per split: no max_cases; no JSON, so no lists beyond the two halves.
    source = _mni152(num_classes or len(MNI152_CLASSES), prep)
    labelled = {TRAINING: source.train, VALIDATION: source.val}
    return dataclasses.replace(source, pretrain=[c for k in pretrain_splits
                                                 for c in labelled.get(k, [])])
  kind = next((k for k in _JSON if dataset.startswith(k)), None)
  if kind is None:
    raise ConfigError(f"config.data.dataset: {dataset!r} is not a volume dataset; one of "
                      f"'{BTCV}/path', '{MSD}/path', '{MNI152}', '{COLIN27}[:/path]'")
  root = os.path.expanduser(dataset[len(kind):])
  json_path = os.path.join(root, _JSON[kind])
  if not os.path.isfile(json_path):
    raise ConfigError(f"config.data.dataset: {json_path} does not exist (a {kind[:-1]} dataset "
                      f"root holds {_JSON[kind]})")
  with open(json_path, encoding="utf-8") as f:
    meta = json.load(f)
  names = {int(k): v for k, v in meta.get("labels", {}).items()}
  if num_classes <= 0:
    if not names:
      raise ConfigError(f"config.data.num_classes: 0 and {json_path} has no \"labels\" to count "
                        "the classes from: set config.data.num_classes")
    num_classes = len(names)
  elif names and num_classes != len(names):
    # A fixed count from a config written for another dataset would predict ids the JSON lacks.
    raise ConfigError(f"{json_path} lists {len(names)} \"labels\" but config.data.num_classes="
                      f"{num_classes}: set config.data.num_classes to {len(names)}, or to 0 to "
                      "take the JSON's")
  class_names = tuple(str(names.get(k, f"class_{k}")) for k in range(num_classes))
  train = _entries(meta, "training", root, json_path)
  if kind == BTCV:
    val = _entries(meta, "validation", root, json_path)
  else:
    train, val = _holdout(train, val_fraction, seed, json_path)
  extra = _pretrain_only(meta, pretrain_splits, root, json_path, {p[0] for p in train + val})
  if max_cases > 0:
    train, val = train[:max_cases], val[:max_cases]
    extra = {k: v[:max_cases] for k, v in extra.items()}
  total, done = len(train) + len(val) + sum(map(len, extra.values())), [0]

  def load(entries: list[tuple[str, str]], keep_source: bool) -> list[Case]:
    cases = []
    for image_path, label_path in entries:
      cases.append(_load_case(image_path, label_path, num_classes, keep_source, prep))
      done[0] += 1
      if done[0] % max(1, total // 10) == 0 or done[0] == total:
        echo(f"preprocessed {done[0]}/{total} volumes")
    return cases

  # Only validation keeps the file-grid label: the metric scores it, and a BTCV training set of
  # them would hold a GB that nothing reads.
  lists = {TRAINING: load(train, False), VALIDATION: load(val, True)}
  lists.update({k: load(v, False) for k, v in extra.items()})
  source = VolumeSource(f"{kind}{root}", num_classes, class_names, 0, lists[TRAINING],
                        lists[VALIDATION], [c for k in pretrain_splits for c in lists.get(k, [])])
  return dataclasses.replace(source, in_channels=_in_channels(source))


def _pretrain_only(meta: dict, pretrain_splits: tuple[str, ...], root: str, json_path: str,
                   labelled: set[str]) -> dict[str, list[tuple[str, str]]]:
  """{list name: [(image path, "")]} of pretrain_splits' lists other than the labelled two, their
  labels unread, scans already in an earlier list left out. A list the JSON lacks is skipped
  with one line ("when present"); a listed file that is missing is an error, as MONAI's
  LoadImaged fails on it: pretraining without it would quietly not be the protocol asked for."""
  seen, out = set(labelled), {}
  for key in pretrain_splits:
    if key in (TRAINING, VALIDATION):
      continue
    if not meta.get(key):
      echo(f"{json_path} has no \"{key}\" list: pretraining reads no scans of it "
           "(config.data.pretrain_splits)")
      continue
    fix = (f" (config.data.pretrain_splits reads it for pretraining: restore the file, or leave "
           f"\"{key}\" out, e.g. --config.data.pretrain_splits=training)")
    out[key] = []
    for image_path, _ in _entries(meta, key, root, json_path, fields=("image",), fix=fix):
      if image_path not in seen:
        seen.add(image_path)
        out[key].append((image_path, ""))
  return out


def _entries(meta: dict, key: str, root: str, json_path: str,
             fields: tuple[str, ...] = ("image", "label"), fix: str = ""
             ) -> list[tuple[str, str]]:
  """[(image path, label path or "")] of meta[key] (the label read when `fields` has it);
  ConfigError if empty or a file is missing (`fix` appended to that message)."""
  items = meta.get(key) or []
  if not items:
    raise ConfigError(f"{json_path}: the \"{key}\" list is empty or missing")
  pairs = []
  for item in items:
    paths = []
    for field in ("image", "label"):
      rel = item.get(field, "") if isinstance(item, dict) else (item if field == "image" else "")
      path = os.path.normpath(os.path.join(root, rel)) if rel and field in fields else ""
      if path and not os.path.isfile(path):
        raise ConfigError(f"{json_path}: \"{key}\" lists {rel}, but {path} does not exist{fix}")
      paths.append(path)
    if not paths[0]:
      raise ConfigError(f"{json_path}: an entry of \"{key}\" has no \"image\": {item}")
    pairs.append(tuple(paths))
  return pairs


def _holdout(entries: list, val_fraction: float, seed: int, json_path: str) -> tuple[list, list]:
  """(train, val): a seeded permutation picks round(val_fraction * n) (at least 1) for val; both
  keep the JSON's order."""
  n_val = max(1, int(round(val_fraction * len(entries))))
  if n_val >= len(entries):
    raise ConfigError(f"{json_path}: holding out {n_val} of {len(entries)} training cases for "
                      "validation leaves none to train on: lower config.data.val_fraction")
  held = set(np.random.default_rng(seed).permutation(len(entries))[:n_val].tolist())
  return ([e for i, e in enumerate(entries) if i not in held],
          [e for i, e in enumerate(entries) if i in held])


def _in_channels(source: VolumeSource) -> int:
  channels = {c.image.shape[-1] for c in source.train + source.val + source.pretrain_cases}
  if len(channels) > 1:
    raise ConfigError(f"{source.name}: images differ in their number of channels "
                      f"{sorted(channels)}; every case needs the same modalities")
  return channels.pop()


def file_stem(path: str) -> str:
  """'/a/img0001.nii.gz' -> 'img0001': a case's name."""
  name = os.path.basename(path)
  for ext in (".nii.gz", ".nii"):
    if name.endswith(ext):
      return name[:-len(ext)]
  return name


def _load_case(image_path: str, label_path: str, num_classes: int, keep_source: bool,
               prep: dict) -> Case:
  nib = nibabel_module()
  image_file = nib.load(image_path)
  image = np.asarray(image_file.get_fdata(dtype=np.float32))
  if image.ndim == 5 and image.shape[3] == 1:   # NIfTI's (X, Y, Z, T=1, C) vector images
    image = image[:, :, :, 0]
  if image.ndim not in (3, 4):
    raise ConfigError(f"{image_path}: a {image.ndim}-D image; volumes are (X, Y, Z) or "
                      "(X, Y, Z, C)")
  image = image if image.ndim == 4 else image[..., None]
  label = None
  if label_path:
    label_file = nib.load(label_path)
    label = np.asarray(label_file.get_fdata(dtype=np.float32))
    if label.ndim == 4 and label.shape[3] == 1:
      label = label[..., 0]
    if label.shape != image.shape[:3]:
      raise ConfigError(f"{label_path} has shape {label.shape} but its image {image_path} has "
                        f"{image.shape[:3]}: labels must lie on their image's voxel grid")
    check_same_grid(image_file.affine, label_file.affine, image_path, label_path)
    label = _check_labels(label, num_classes, label_path)
  return preprocess(file_stem(image_path), image, label, image_file.affine, keep_source=keep_source,
                    image_path=image_path, label_path=label_path, **prep)


def check_same_grid(a: np.ndarray, b: np.ndarray, image_path: str, label_path: str) -> None:
  """ConfigError unless affines a (the image's) and b (the label's) are one voxel grid."""
  voxel = np.linalg.norm(a[:3, :3], axis=0).min()
  if not np.allclose(a, b, rtol=0, atol=_AFFINE_TOL * voxel):
    raise ConfigError(f"{label_path} and its image {image_path} have different affines "
                      f"({np.round(b[:3], 3).tolist()} vs {np.round(a[:3], 3).tolist()}): "
                      "labels must lie on their image's voxel grid")


def _check_labels(label: np.ndarray, num_classes: int, label_path: str) -> np.ndarray:
  """float (X, Y, Z) as read -> uint8; ConfigError naming the file for values it cannot be."""
  if not np.array_equal(label, np.round(label)) or label.min() < 0:
    bad = label[(label != np.round(label)) | (label < 0)].flat[0]
    raise ConfigError(f"{label_path} has label value {bad}: labels are class ids 0..C-1 "
                      "(non-negative integers)")
  top = int(label.max())
  if top >= num_classes:
    raise ConfigError(f"{label_path} has label value {top} but config.data.num_classes="
                      f"{num_classes} (classes 0..{num_classes - 1}): set "
                      "config.data.num_classes")
  return label.astype(np.uint8)


def mni152_paths(dataset: str) -> dict[str, str]:
  """{"t1", "gm", "wm": path} of the MNI152 2009 template files shipped inside nilearn; a
  ConfigError naming `dataset` (the config.data.dataset that reads them) without nilearn."""
  spec = importlib.util.find_spec("nilearn")   # finds the files without importing nilearn
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError(f"config.data.dataset: '{dataset}' reads the MNI152 template shipped in "
                      f"nilearn: {_INSTALL}")
  folder = os.path.join(spec.submodule_search_locations[0], "datasets", "data")
  return {k: os.path.join(folder, f) for k, f in _MNI152_FILES.items()}


def _mni152(num_classes: int, prep: dict) -> VolumeSource:
  """The nilearn MNI152 T1 template, labelled argmax(1 - gm - wm, gm, wm), cut at world x = 0."""
  nib = nibabel_module()
  paths = mni152_paths(MNI152)
  files = {k: nib.as_closest_canonical(nib.load(p)) for k, p in paths.items()}
  image = files["t1"].get_fdata(dtype=np.float32)[..., None]
  gm, wm = (files[k].get_fdata(dtype=np.float32) for k in ("gm", "wm"))
  # The maps are probabilities scaled to 0..255; "other" is what neither tissue claims.
  label = _check_labels(np.argmax(np.stack([255 - gm - wm, gm, wm]), axis=0).astype(np.float32),
                        num_classes, paths["gm"])
  affine = files["t1"].affine
  # RAS: the x axis runs along the first voxel axis; the first index at world x >= 0 starts the
  # right hemisphere (the voxel on the plane itself goes right).
  mid = int(np.ceil(-affine[0, 3] / affine[0, 0] - 1e-6))
  right_affine = affine.copy()
  right_affine[:3, 3] += affine[:3, 0] * mid
  halves = [("mni152_left", slice(0, mid), affine), ("mni152_right", slice(mid, None),
                                                      right_affine)]
  cases = [preprocess(name, image[part], label[part], a, keep_source=True,
                      image_path=paths["t1"], label_path="", **prep)
           for name, part, a in halves]
  echo(f"preprocessed {len(cases)}/{len(cases)} volumes")
  names = tuple(MNI152_CLASSES[k] if k < len(MNI152_CLASSES) else f"class_{k}"
                for k in range(num_classes))
  return VolumeSource(MNI152, num_classes, names, 1, [cases[0]], [cases[1]])


# ---- preprocessing ------------------------------------------------------------------------------

def preprocess(name: str, image: np.ndarray, label: np.ndarray | None, affine: np.ndarray, *,
               spacing: tuple[float, float, float], intensity: str,
               intensity_range: tuple[float, float], keep_source: bool = True,
               image_path: str = "", label_path: str = "") -> Case:
  """A Case from arrays as stored: image (X, Y, Z, C) float32, label (X, Y, Z) uint8 or None,
  `affine` (4, 4) their voxel->world. RAS -> spacing -> intensity -> foreground crop."""
  nib = nibabel_module()
  source_shape = tuple(int(s) for s in image.shape[:3])
  ornt = nib.orientations.io_orientation(affine)
  ras = nib.orientations.apply_orientation
  image = ras(image, ornt)
  canonical = affine @ nib.orientations.inv_ornt_aff(ornt, source_shape)
  scale = _resample_scale(canonical, spacing)
  new_shape = tuple(max(1, int(round(s / f))) for s, f in zip(image.shape[:3], scale))
  image = np.stack([_resample(image[..., c], scale, new_shape, 1)
                    for c in range(image.shape[-1])], axis=-1)
  image = scale_intensity(image, intensity, intensity_range)
  grid = canonical @ np.diag([*scale, 1.0])
  # z-scored images are negative over half their foreground: there the foreground is what the
  # normalisation touched (nonzero), for windowed ones what lies above the window's floor.
  box = foreground_box(image > 0 if intensity == "window" else image != 0)
  image = image[box]
  crop = grid.copy()
  crop[:3, 3] = grid[:3, :3] @ [s.start for s in box] + grid[:3, 3]
  ras_label = None
  if label is not None:
    ras_label = _resample(ras(label, ornt), scale, new_shape, 0)[box]
  return Case(name=name, image=np.ascontiguousarray(image, np.float32),
              label=None if ras_label is None else np.ascontiguousarray(ras_label),
              affine=crop, source_affine=np.asarray(affine, np.float64),
              source_shape=source_shape,
              source_label=label if keep_source and label is not None else None,
              image_path=image_path, label_path=label_path)


def _resample_scale(affine: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
  """(3,) new voxel size / old voxel size per axis, 1 where they (nearly) agree."""
  zooms = np.linalg.norm(affine[:3, :3], axis=0)
  scale = np.asarray(spacing, np.float64) / zooms
  return np.where(np.abs(scale - 1) <= _SPACING_RTOL, 1.0, scale)


def _resample(volume: np.ndarray, scale: np.ndarray, shape: tuple[int, ...], order: int
              ) -> np.ndarray:
  """(X, Y, Z) -> `shape`: output voxel o samples input position o * scale, so index 0 keeps
  its world point. Out-of-range positions (the last output voxels) take the border value."""
  if np.all(scale == 1) and volume.shape == shape:
    return volume
  # A 1-D matrix is a diagonal: scipy's cheap separable path, no coordinate arrays.
  return ndimage.affine_transform(volume, scale, output_shape=shape, order=order,
                                  mode="nearest", prefilter=False)


def scale_intensity(image: np.ndarray, mode: str, intensity_range: tuple[float, float]
                    ) -> np.ndarray:
  """image (X, Y, Z, C) float32 -> scaled. "window": clip to (a_min, a_max), map to [0, 1]
  (MONAI ScaleIntensityRanged, clip=True); "zscore": per channel over its nonzero voxels, zeros
  stay 0 (NormalizeIntensityd nonzero=True, channel_wise=True)."""
  if mode == "window":
    lo, hi = intensity_range
    if hi <= lo:
      raise ConfigError(f"config.data.intensity_range: {intensity_range} is empty: (a_min, a_max) "
                        "with a_min < a_max")
    return np.clip((image - np.float32(lo)) / np.float32(hi - lo), 0, 1).astype(np.float32)
  if mode != "zscore":
    raise ConfigError(f"config.data.intensity: {mode!r} is not one of {INTENSITY_MODES}")
  out = image.astype(np.float32, copy=True)
  for c in range(out.shape[-1]):
    channel = out[..., c]
    nonzero = channel != 0
    if nonzero.any():
      values = channel[nonzero]
      std = values.std()
      channel[nonzero] = (values - values.mean()) / (std if std > 0 else 1.0)
  return out


def foreground_box(mask: np.ndarray) -> tuple[slice, ...]:
  """mask (X, Y, Z, C) or (X, Y, Z) bool -> the slices of the bounding box where any channel is
  set (MONAI CropForegroundd, margin 0). An empty mask keeps everything (MONAI would crop to
  nothing, which no later step survives)."""
  spatial = mask.any(axis=-1) if mask.ndim == 4 else mask
  box = []
  for axis in range(3):
    hits = np.flatnonzero(spatial.any(axis=tuple(a for a in range(3) if a != axis)))
    if hits.size == 0:
      return tuple(slice(0, s) for s in spatial.shape)
    box.append(slice(int(hits[0]), int(hits[-1]) + 1))
  return tuple(box)


# ---- back to the files' grid --------------------------------------------------------------------

def to_source_grid(case: Case, labels: np.ndarray) -> np.ndarray:
  """labels (X, Y, Z) int on the preprocessed grid -> uint8 (source_shape) on the image file's
  own grid (orientation, spacing and crop undone), nearest neighbour, 0 outside the crop."""
  # File voxel -> world -> preprocessed voxel, one affine: no coordinate arrays.
  m = np.linalg.inv(case.affine) @ case.source_affine
  # grid-constant: a file voxel within half a preprocessed voxel of the crop still takes the
  # nearest label; beyond that it is background.
  return ndimage.affine_transform(labels.astype(np.uint8), m[:3, :3], offset=m[:3, 3],
                                  output_shape=case.source_shape, order=0, mode="grid-constant",
                                  cval=0, prefilter=False)


def write_label_nifti(path: str, labels: np.ndarray, affine: np.ndarray) -> str:
  """labels (X, Y, Z) -> a uint8 NIfTI at `path` with `affine` as its sform and qform."""
  nib = nibabel_module()
  image = nib.Nifti1Image(np.asarray(labels, np.uint8), np.asarray(affine, np.float64))
  image.set_data_dtype(np.uint8)
  # Viewers differ in which of the two they read; both carry the same grid.
  image.set_sform(affine, code=1)
  image.set_qform(affine, code=1)
  if os.path.dirname(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
  nib.save(image, path)
  return path


# ---- training crops and augmentation ------------------------------------------------------------

def pad_to(volume: np.ndarray, roi: tuple[int, int, int]) -> np.ndarray:
  """(X, Y, Z, ...) -> at least roi on the spatial axes: zeros split evenly, the odd one after
  (MONAI SpatialPad, method symmetric)."""
  widths = [(d // 2, d - d // 2) for d in (max(r - s, 0) for r, s in zip(roi, volume.shape))]
  if not any(a or b for a, b in widths):
    return volume
  return np.pad(volume, widths + [(0, 0)] * (volume.ndim - 3))


def _crop_data(case: Case, roi: tuple[int, int, int]) -> dict:
  """Padded image and label and where their foreground/background voxels are, once per roi."""
  if roi not in case._crop_cache:   # pylint: disable=protected-access
    image = pad_to(case.image, roi)
    data = {"image": image, "label": None}
    if case.label is not None:
      label = pad_to(case.label, roi)
      flat = label.reshape(-1)
      index_dtype = np.int32 if flat.size < 2**31 else np.int64
      background = (label == 0) & (image > 0).any(axis=-1)
      count = int(background.sum())
      data.update(label=label, fg=np.flatnonzero(flat).astype(index_dtype), bg_count=count)
      # Background is usually most of the cropped volume: drawing candidates until one is
      # background costs a few draws and no list of millions of indices.
      if count < _MIN_REJECTION_FRACTION * flat.size:
        data["bg"] = np.flatnonzero(background).astype(index_dtype)
    case._crop_cache[roi] = data   # pylint: disable=protected-access
  return case._crop_cache[roi]   # pylint: disable=protected-access


def _draw_background(data: dict, rng: np.random.Generator) -> int:
  if "bg" in data:
    return int(data["bg"][rng.integers(len(data["bg"]))])
  image, label = data["image"], data["label"]
  shape = label.shape
  while True:
    flat = rng.integers(label.size, size=64)
    idx = np.unravel_index(flat, shape)
    ok = (label[idx] == 0) & (image[idx] > 0).any(axis=-1)
    if ok.any():
      return int(flat[np.argmax(ok)])


def random_crops(case: Case, roi: tuple[int, int, int], num: int, rng: np.random.Generator,
                 pos: float = 1.0, neg: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
  """`num` training crops of a case padded up to roi: images (num, *roi, C) float32, labels
  (num, *roi) uint8 or None.

  With a label each crop centres on a foreground voxel (label > 0) with probability
  pos / (pos + neg), else on background (label 0, image > 0), shifted so the crop lies inside
  (MONAI RandCropByPosNegLabeld, image_threshold 0); without one, uniform crops.
  """
  roi = tuple(int(r) for r in roi)
  data = _crop_data(case, roi)
  image, label = data["image"], data["label"]
  shape = np.asarray(image.shape[:3])
  starts = []
  for _ in range(num):
    if label is None or (len(data["fg"]) == 0 and data["bg_count"] == 0):
      starts.append([rng.integers(0, s - r + 1) for s, r in zip(shape, roi)])
      continue
    positive = rng.random() * (pos + neg) < pos if pos + neg > 0 else True
    # Like MONAI: when one kind is absent every centre is of the other kind.
    if len(data["fg"]) == 0 or data["bg_count"] == 0:
      positive = len(data["fg"]) > 0
    flat = (int(data["fg"][rng.integers(len(data["fg"]))]) if positive
            else _draw_background(data, rng))
    centre = np.unravel_index(flat, tuple(shape))
    starts.append(np.clip(np.asarray(centre) - np.asarray(roi) // 2, 0, shape - roi))
  window = lambda a, s: a[s[0]:s[0] + roi[0], s[1]:s[1] + roi[1], s[2]:s[2] + roi[2]]  # noqa: E731
  images = np.stack([window(image, s) for s in starts]).astype(np.float32)
  labels = None if label is None else np.stack([window(label, s) for s in starts])
  return images, labels


def augment(images: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator, *,
            flip_prob: float, rot90_prob: float, intensity_prob: float,
            intensity_factor: float) -> tuple[np.ndarray, np.ndarray | None]:
  """images (N, X, Y, Z, C), labels (N, X, Y, Z) or None -> augmented copies, drawn per crop.

  MONAI's BTCV recipe: a flip along each spatial axis with flip_prob (RandFlipd); rot90 by
  k in {1, 2, 3} in the (X, Y) plane with rot90_prob (RandRotate90d, max_k 3; only when X == Y);
  x * (1 + U(-f, f)) and then x + U(-f, f), each with intensity_prob (RandScaleIntensityd and
  RandShiftIntensityd; the recipe's 0.1 and 0.5 become one probability). Labels follow the
  flips and rotations.
  """
  out_images, out_labels = [], []
  square = images.shape[1] == images.shape[2]
  for n in range(images.shape[0]):
    x = images[n]
    y = None if labels is None else labels[n]
    for axis in range(3):
      if rng.random() < flip_prob:
        x = np.flip(x, axis)
        y = None if y is None else np.flip(y, axis)
    if square and rng.random() < rot90_prob:
      k = int(rng.integers(1, 4))
      x = np.rot90(x, k, axes=(0, 1))
      y = None if y is None else np.rot90(y, k, axes=(0, 1))
    if rng.random() < intensity_prob:
      x = x * np.float32(1 + rng.uniform(-intensity_factor, intensity_factor))
    if rng.random() < intensity_prob:
      x = x + np.float32(rng.uniform(-intensity_factor, intensity_factor))
    out_images.append(x)
    out_labels.append(y)
  images_out = np.stack(out_images).astype(np.float32)
  return images_out, None if labels is None else np.stack(out_labels).astype(np.uint8)
