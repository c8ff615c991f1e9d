"""Semantic-segmentation datasets: images with per-pixel label maps.

`seg_source(dataset)` (config.data.dataset) takes
  * "digits_seg": scikit-learn's digits pasted onto larger canvases, stroke pixels labelled with
    their digit (classes 1..10 = digits 0..9), the rest background (class 0): offline, real
    handwriting;
  * "ade20k:/path/to/ADEChallengeData2016": the official ADE20K (SceneParsing) release,
    images/{training,validation}/*.jpg and annotations/{training,validation}/*.png, annotation 0
    = "other" (ignored), 1..150 = the classes;
  * "segfolder:/path": your own data in the same layout, `num_classes` classes (0 ignored, 1..C);
  * "oxford_iiit_pet_masks": TFDS oxford_iiit_pet's trimaps (its `segmentation_mask`: 1 pet,
    2 background, 3 border) as class 0 background, 1 pet, the uncertain border ignored.
Examples are {"image": uint8 (H, W, 3), "label": uint8 (H, W), "name": string}: labels are the
model's class ids 0..K-1 with IGNORE_LABEL (255) where no loss or metric looks. The annotation
files' own encoding comes back with `SegSource.to_file_labels` (prediction PNGs).
"""

import dataclasses
import functools
import os
from typing import Callable

import numpy as np

from mae_jax.data import decoding, digits
from mae_jax.data import base
from mae_jax.data.base import split_size
from mae_jax.data.seg_datasets import ADE20K, DIGITS_SEG, PETS_MASKS, SEGFOLDER
from mae_jax.data.tfsetup import tf
from mae_jax.errors import ConfigError
from mae_jax.losses import IGNORE_LABEL

ADE20K_CLASSES = 150
FOLDER_SPLITS = ("training", "validation")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclasses.dataclass(frozen=True)
class SegSource:
  """A segmentation dataset with named splits, each in a fixed order; a base.DataSource whose
  split_sizes counts images."""
  name: str
  num_classes: int
  split_sizes: dict[str, int]
  train_split: str
  eval_split: str
  # split -> (int64 index () -> {"image": uint8 (H, W, 3), "label": uint8 (H, W), "name":
  # string}), a TF function: training reads its examples by index, in the schedule's order.
  reader: Callable[[str], Callable[[tf.Tensor], dict[str, tf.Tensor]]] = dataclasses.field(
      repr=False, compare=False)
  # Class ids (H, W) uint8 -> the values the dataset's annotation files use.
  to_file_labels: Callable[[np.ndarray], np.ndarray] = dataclasses.field(
      default=lambda ids: ids, repr=False, compare=False)

  @property
  def splits(self) -> tuple[str, ...]:
    """The split names (base.DataSource)."""
    return tuple(self.split_sizes)

  def describe(self) -> str:
    """Split sizes and classes, for the log (base.DataSource)."""
    return f"{self.split_sizes}, {self.num_classes} classes"

  def num_examples(self, split: str) -> int:
    """Number of examples in `split`; ValueError naming the valid splits if there is none."""
    return split_size(self.name, self.split_sizes, split)

  def load(self, split: str) -> tf.data.Dataset:
    """The examples of `split` in their fixed order."""
    return tf.data.Dataset.range(self.num_examples(split)).map(
        self.reader(split), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def train_classes(self) -> None:
    """None: an image holds many classes, so subsets are drawn without strata."""
    return None

  def examples_for_batch(self, batch_size: int) -> int:
    """The fewest training examples a batch needs (one per row; base.Selectable)."""
    return batch_size

  def view(self, train: np.ndarray, heldout: np.ndarray | None = None) -> "SegSource":
    """This source with its train split cut to the images `train` (sorted indices into it)
    and, with `heldout`, those training images as its eval split (base.Selectable)."""
    parts = base.view_parts(self.train_split, self.num_examples(self.train_split), train,
                            heldout)

    def reader(split: str) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
      if split not in parts:
        return self.reader(split)
      read, table = self.reader(self.train_split), tf.constant(parts[split])
      return lambda i: read(tf.gather(table, i))

    return dataclasses.replace(self, **base.view_fields(self, parts, self.eval_split),
                               reader=reader)


def seg_source(dataset: str, num_classes: int = 0, data_dir: str | None = None) -> SegSource:
  """The SegSource of config.data.dataset (see the module docstring); `num_classes` is
  config.data.num_classes, which "segfolder:" needs; `data_dir` the TFDS data dir."""
  if dataset == PETS_MASKS:
    return pets_masks_source(data_dir)
  if dataset == DIGITS_SEG:
    arrays = digits_seg_arrays()
    return SegSource(DIGITS_SEG, DIGITS_SEG_CLASSES,
                     {s: len(arrays[s][0]) for s in arrays}, "train", "test",
                     reader=_digits_seg_reader)
  if dataset.startswith(ADE20K):
    return folder_source(dataset[len(ADE20K):], ADE20K_CLASSES, "ade20k")
  if dataset.startswith(SEGFOLDER):
    if num_classes < 1:
      raise ConfigError("config.data.num_classes: a segfolder: dataset needs its number of "
                        "classes (annotation values 1..C; 0 is ignored)")
    return folder_source(dataset[len(SEGFOLDER):], num_classes, "segfolder")
  raise ConfigError(f"config.data.dataset: {dataset!r} is not a segmentation dataset; one of "
                    f"'{DIGITS_SEG}', '{ADE20K}/path', '{SEGFOLDER}/path'")


def file_encoding(dataset: str) -> Callable[[np.ndarray], np.ndarray]:
  """Class ids -> the annotation files' values of `dataset`'s kind, without reading it."""
  if dataset.startswith((ADE20K, SEGFOLDER)):
    return _folder_encoding
  if dataset == PETS_MASKS:
    return lambda ids: _CLASS_TO_TRIMAP[ids]
  return lambda ids: ids


def _folder_encoding(ids: np.ndarray) -> np.ndarray:
  # Annotation k is class k - 1; the ignored 0 ("other") is what ignore comes back as.
  return np.where(ids == IGNORE_LABEL, 0, ids.astype(np.int32) + 1).astype(np.uint8)


def images_source(root: str) -> SegSource:
  """The images of a folder (any depth, sorted), without labels: what mae-jax-predict reads.
  Their "label" is an all-ignored map of the image's size; "name" the path below `root`."""
  root = os.path.expanduser(root)
  paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                 if f.lower().endswith(_IMAGE_EXTENSIONS))
  if not paths:
    raise ConfigError(f"--images: no images ({', '.join(_IMAGE_EXTENSIONS)}) under {root}")
  names = [os.path.splitext(os.path.relpath(p, root))[0] for p in paths]

  def reader(split: str) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    del split
    files, stems = tf.constant(paths), tf.constant(names)

    def read(i: tf.Tensor) -> dict[str, tf.Tensor]:
      image = decoding.decode(tf.io.read_file(tf.gather(files, i)))
      return {"image": image, "label": tf.fill(tf.shape(image)[:2], tf.constant(IGNORE_LABEL,
                                                                                tf.uint8)),
              "name": tf.gather(stems, i)}

    return read

  return SegSource(f"images:{root}", 0, {"images": len(paths)}, "images", "images",
                   reader=reader)


# ---- image + annotation folders (ADE20K's layout) -----------------------------------------------

def folder_pairs(root: str, split: str) -> list[tuple[str, str]]:
  """[(image path, annotation path)] of root/images/<split> and root/annotations/<split>, by
  file stem, sorted; ConfigError naming the first image without an annotation."""
  image_dir = os.path.join(root, "images", split)
  label_dir = os.path.join(root, "annotations", split)
  for d in (image_dir, label_dir):
    if not os.path.isdir(d):
      raise ConfigError(f"config.data.dataset: {d} does not exist: expected "
                        f"{root}/images/{{{','.join(FOLDER_SPLITS)}}}/*.jpg and "
                        f"{root}/annotations/{{{','.join(FOLDER_SPLITS)}}}/*.png")
  labels = {os.path.splitext(f)[0]: os.path.join(label_dir, f) for f in os.listdir(label_dir)
            if f.lower().endswith(".png")}
  pairs = []
  for f in sorted(os.listdir(image_dir)):
    stem, ext = os.path.splitext(f)
    if ext.lower() not in _IMAGE_EXTENSIONS:
      continue
    if stem not in labels:
      raise ConfigError(f"{os.path.join(image_dir, f)} has no annotation: expected "
                        f"{os.path.join(label_dir, stem + '.png')}")
    pairs.append((os.path.join(image_dir, f), labels[stem]))
  if not pairs:
    raise ConfigError(f"config.data.dataset: no images in {image_dir}")
  return pairs


def folder_source(root: str, num_classes: int, name: str) -> SegSource:
  root = os.path.expanduser(root)
  pairs = {split: folder_pairs(root, split) for split in FOLDER_SPLITS}

  def reader(split: str) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    images, labels = (tf.constant(list(p)) for p in zip(*pairs[split]))
    return lambda i: read_pair(tf.gather(images, i), tf.gather(labels, i), num_classes)

  return SegSource(f"{name}:{root}", num_classes, {s: len(p) for s, p in pairs.items()},
                   "training", "validation", reader=reader, to_file_labels=_folder_encoding)


def read_pair(image_path: tf.Tensor, label_path: tf.Tensor, num_classes: int
              ) -> dict[str, tf.Tensor]:
  """One example from its files; a size mismatch or a label above `num_classes` fails with a
  message naming the annotation file (InvalidArgumentError, made one line by the pipeline)."""
  image = decoding.decode(tf.io.read_file(image_path))
  raw = tf.io.decode_png(tf.io.read_file(label_path), channels=1)[..., 0]
  tf.debugging.assert_equal(
      tf.shape(image)[:2], tf.shape(raw),
      message=tf.strings.join([label_path, ": annotation size differs from its image's"]))
  tf.debugging.assert_less_equal(
      tf.reduce_max(tf.cast(raw, tf.int32)), num_classes,
      message=tf.strings.join([label_path, f": a label value above the {num_classes} classes "
                               "(annotations hold 0 = ignored, 1..C)"]))
  # uint8 arithmetic: 0 - 1 wraps to 255, the ignore label (mmsegmentation's reduce_zero_label).
  label = raw - tf.constant(1, tf.uint8)
  return {"image": image, "label": label,
          "name": tf.strings.regex_replace(tf.strings.split(label_path, "/")[-1], r"\.png$", "")}


# ---- digits pasted on canvases ------------------------------------------------------------------

DIGITS_SEG_CLASSES = 11        # background + the ten digits
DIGITS_SEG_SIZE = 64           # canvas side
_DIGITS_PER_CANVAS = 3
_CANVASES = {"train": 5000, "test": 300}
_INK_THRESHOLD = 96            # a pixel at least this bright (of 255) is stroke, not background


@functools.lru_cache(maxsize=None)
def digits_seg_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (images uint8 (N, 64, 64, 3), labels uint8 (N, 64, 64))}, fixed.

  Each canvas holds three digits of the split (digits.py's 32-pixel images), at random places
  (a fixed seed: part of the dataset's definition), overlaps resolved by the brighter stroke.
  """
  out = {}
  for k, (split, count) in enumerate(_CANVASES.items()):
    images, classes = digits.digits_arrays()[split]
    rng = np.random.default_rng(1000 + k)
    side, size = DIGITS_SEG_SIZE, images.shape[1]
    canvas = np.zeros((count, side, side), np.uint8)
    label = np.zeros((count, side, side), np.uint8)
    for i in range(count):
      for j in rng.choice(len(images), _DIGITS_PER_CANVAS, replace=False):
        top, left = rng.integers(0, side - size + 1, size=2)
        window = np.s_[i, top:top + size, left:left + size]
        ink = images[j, :, :, 0]
        brighter = ink > canvas[window]
        canvas[window] = np.where(brighter, ink, canvas[window])
        label[window] = np.where(brighter & (ink >= _INK_THRESHOLD), classes[j] + 1,
                                 label[window])
    # A background pixel stays background even under a faint edge of a later digit.
    label[canvas < _INK_THRESHOLD] = 0
    rgb = np.repeat(canvas[..., None], 3, axis=-1)
    rgb.setflags(write=False)
    label.setflags(write=False)
    out[split] = (rgb, label)
  return out


def _digits_seg_reader(split: str) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
  images, labels = (tf.constant(a) for a in digits_seg_arrays()[split])
  return lambda i: {"image": tf.gather(images, i), "label": tf.gather(labels, i),
                    "name": tf.strings.join([f"{split}_", tf.strings.as_string(i, width=5,
                                                                               fill="0")])}


# ---- Oxford-IIIT Pets trimaps (TFDS) ------------------------------------------------------------

# Trimap value -> class id: 1 (pet) -> 1, 2 (background) -> 0; 3 (border) and anything else
# ignored. Back to the trimap: class 0 -> 2, 1 -> 1, ignored -> 3.
_TRIMAP_TO_CLASS = np.full(256, IGNORE_LABEL, np.uint8)
_TRIMAP_TO_CLASS[1], _TRIMAP_TO_CLASS[2] = 1, 0
_CLASS_TO_TRIMAP = np.full(256, 3, np.uint8)
_CLASS_TO_TRIMAP[0], _CLASS_TO_TRIMAP[1] = 2, 1


def trimap_classes(trimap: np.ndarray) -> np.ndarray:
  """Pets trimap values (H, W) -> class ids (0 background, 1 pet, IGNORE_LABEL border)."""
  return _TRIMAP_TO_CLASS[trimap]


def pets_masks_source(data_dir: str | None) -> SegSource:
  """TFDS oxford_iiit_pet with its segmentation masks: train 3,680 / test 3,669. The encoded
  images and masks of a split are held in memory (~0.8 GB for train) and decoded per use."""
  # Here, not at the top: the other segmentation datasets need no TFDS.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from mae_jax.data import tfds_prep  # pylint: disable=g-import-not-at-top
  builder = tfds.builder("oxford_iiit_pet", data_dir=data_dir)
  tfds_prep.prepare_tfds(builder, "oxford_iiit_pet")
  sizes = {split: info.num_examples for split, info in builder.info.splits.items()}
  table = tf.constant(_TRIMAP_TO_CLASS)

  @functools.lru_cache(maxsize=None)
  def encoded(split: str) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    # Only these three features, undecoded; canonical order (one file after another).
    decoders = tfds.decode.PartialDecoding(
        {"image": True, "segmentation_mask": True, "file_name": True},
        decoders={"image": tfds.decode.SkipDecoding(),
                  "segmentation_mask": tfds.decode.SkipDecoding()})
    ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                            read_config=tfds.ReadConfig(interleave_cycle_length=1))
    images, masks, names = [], [], []
    for ex in ds.as_numpy_iterator():
      images.append(ex["image"])
      masks.append(ex["segmentation_mask"])
      names.append(ex["file_name"].decode().rsplit(".", 1)[0])
    return tf.constant(images), tf.constant(masks), tf.constant(names)

  def reader(split: str) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    images, masks, names = encoded(split)
    return lambda i: {
        "image": decoding.decode(tf.gather(images, i)),
        "label": tf.gather(table, tf.cast(
            tf.io.decode_png(tf.gather(masks, i), channels=1)[..., 0], tf.int32)),
        "name": tf.gather(names, i)}

  return SegSource(PETS_MASKS, 2, sizes, "train", "test", reader=reader,
                   to_file_labels=lambda ids: _CLASS_TO_TRIMAP[ids])
