"""Datasets: where examples come from, as fixed-order tf.data streams of (image, label).

`get_source(dataset)` (config.data.dataset) takes one of
  * "digits": scikit-learn's handwritten digits (offline);
  * "fashion_mnist": TFDS's copy where it is prepared, else Debian's `dataset-fashion-mnist`
    files (offline), else TFDS (downloads it); "fashion_mnist:/path" or "idx:/path": the four
    IDX files of MNIST, Fashion-MNIST, KMNIST... in a folder (idx.py);
  * "imagefolder:/path/to/root": your own images, root/<split>/<class>/<image> (imagefolder.py);
  * "images:/path/to/root": unlabeled images at any depth, for pretraining (images.py);
  * "tfds:NAME" or plain "NAME": any TFDS image-classification dataset, e.g. "oxford_iiit_pet",
    "tiny_imagenet" (mae_jax's own builder, tiny_imagenet.py), "cifar10".
A `Source` only promises a deterministic order; shuffling, augmentation and batching are the
pipeline's job. Sources whose files hold encoded images (JPEG, PNG) also serve the encoded bytes,
so the training pipeline can keep the split compressed in memory and decode only the crop; an
image that does not decode fails where it is decoded, and the pipeline skips it (pipeline.py).
"""

import concurrent.futures
import dataclasses
import functools
import os
from typing import Any, Callable

import numpy as np
import tensorflow_datasets as tfds

from mae_jax import prepare
from mae_jax.data import base
from mae_jax.data import decoding
from mae_jax.data import digits
from mae_jax.data import idx
from mae_jax.data import imagefolder
from mae_jax.data import images
from mae_jax.data import seg_datasets
from mae_jax.data import seg_sources
from mae_jax.data.base import split_size
from mae_jax.data.skips import Unreadable
from mae_jax.data.tfds_prep import load_tfds_split
from mae_jax.data.tfds_prep import prepare_tfds
from mae_jax.data.tfsetup import tf
from mae_jax.errors import ConfigError, DatasetUnavailableError

_KNOWN_NAMES = ("'digits', 'imagefolder:/path/to/root', 'images:/path/to/root' (unlabeled), "
                "'oxford_iiit_pet', 'tiny_imagenet', or "
                "any TFDS image-classification dataset name as 'tfds:NAME' or 'NAME' (e.g. "
                "'cifar10', 'oxford_flowers102', 'imagenet_resized/32x32'); MNIST-style IDX "
                "files: 'fashion_mnist', 'fashion_mnist:/path', 'idx:/path'")
_TFDS_PREFIX = "tfds:"
_FASHION_MNIST = "fashion_mnist"
_IDX_PREFIXES = ("fashion_mnist:", "idx:")
# Fashion-MNIST's labels 0..9 (TFDS's ClassLabel names; the IDX files carry none).
_FASHION_MNIST_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                        "Sneaker", "Bag", "Ankle boot")
_READ_CHUNK = 64   # examples read from a random-access store at once, in order


@dataclasses.dataclass(frozen=True)
class RandomAccess:
  """A split's examples read one at a time by index, for training without a cache."""
  # int64 indices (k,) -> (encoded image bytes tf.string (k,), int32 labels (k,)), as TF ops:
  # reading several at once lets array_record fetch them in one call.
  read: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
  num_bytes: Callable[[], int]                 # the split's encoded size (may stat every file)


@dataclasses.dataclass(frozen=True)
class Source:
  """An image dataset with named splits: classified, or unlabeled (num_classes 0, labels 0).
  A base.DataSource; split_sizes counts images.

  `loader(split)` returns a tf.data.Dataset of {"image": uint8 (H, W, 3), "label": int32 scalar}
  whose order is fixed (same examples in the same order on every call and every machine).
  """
  name: str
  num_classes: int
  split_sizes: dict[str, int]
  train_split: str
  eval_split: str
  loader: Callable[[str], tf.data.Dataset] = dataclasses.field(repr=False, compare=False)
  # Optional: split -> the same examples with "image" as encoded bytes (tf.string).
  encoded_loader: Callable[[str], tf.data.Dataset] | None = dataclasses.field(
      default=None, repr=False, compare=False)
  # Optional: split -> its image files in order (sources read from a folder).
  files: Callable[[str], list[str]] | None = dataclasses.field(
      default=None, repr=False, compare=False)
  # Optional: split -> its examples by index (what the training pipeline streams from).
  random_access: Callable[[str], RandomAccess] | None = dataclasses.field(
      default=None, repr=False, compare=False)
  # Optional: the classes' names in label order (TFDS's label names, the class folders);
  # () = none (reports then name a class by its id).
  class_names: tuple[str, ...] = dataclasses.field(default=(), repr=False)
  # The files its scan left out as not images (images: folders), for the skip report (skips.py).
  unreadable: Unreadable = dataclasses.field(default=Unreadable(), repr=False)
  # Optional: split -> how reports name its examples, in order, where `files` cannot (a packed
  # folder: the original files' paths).
  names: Callable[[str], list[str]] | None = dataclasses.field(
      default=None, repr=False, compare=False)

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
    """The examples of `split` in their fixed order (see the class docstring)."""
    self.num_examples(split)
    return self.loader(split)

  def load_encoded(self, split: str) -> tf.data.Dataset | None:
    """`load(split)` with encoded image bytes, or None if this source holds decoded pixels."""
    self.num_examples(split)
    return None if self.encoded_loader is None else self.encoded_loader(split)

  def train_classes(self) -> np.ndarray:
    """int32 (N,): the class of every training example, in order (base.Selectable); read from
    the encoded bytes where the source has them, so nothing is decoded."""
    ds = self.load_encoded(self.train_split) or self.load(self.train_split)
    return np.concatenate([np.zeros(0, np.int32)] + [
        b.numpy() for b in ds.map(lambda ex: ex["label"]).batch(8192)]).astype(np.int32)

  def examples_for_batch(self, batch_size: int) -> int:
    """The fewest training examples a batch needs (one per row; base.Selectable)."""
    return batch_size

  def view(self, train: np.ndarray, heldout: np.ndarray | None = None) -> "Source":
    """This source with its train split cut to the examples `train` (sorted indices into it)
    and, with `heldout` (the same kind), those training examples as its eval split: the
    labelled subset and the held-out slice of base.Selectable. A source read by index reads
    only the chosen examples; another reads its split up to the last chosen one."""
    parts = base.view_parts(self.train_split, self.num_examples(self.train_split), train,
                            heldout)

    def pick(split: str, fn: Callable[[str], tf.data.Dataset]) -> tf.data.Dataset:
      if split not in parts:
        return fn(split)
      keep = np.zeros(self.num_examples(self.train_split), bool)
      keep[parts[split]] = True
      keep_t = tf.constant(keep)

      # Named and not converted: AutoGraph cannot tell two lambdas on one line apart, and the
      # warning it logs for each holds the whole pipeline alive in every log handler.
      @tf.autograph.experimental.do_not_convert
      def chosen(i, ex):
        del ex
        return keep_t[i]

      @tf.autograph.experimental.do_not_convert
      def example(i, ex):
        del i
        return ex

      # Read no further than the last chosen example: a prefix costs only itself.
      return (fn(self.train_split).take(int(parts[split].max()) + 1).enumerate()
              .filter(chosen).map(example))

    def by_index(split: str) -> tf.data.Dataset:
      # Only the chosen examples are read, from the random-access store.
      return _in_order(random_access(split), len(parts[split]))

    def random_access(split: str) -> RandomAccess:
      if split not in parts:
        return self.random_access(split)
      store, table = self.random_access(self.train_split), tf.constant(parts[split])
      share = len(parts[split]) / self.num_examples(self.train_split)
      return RandomAccess(read=lambda indices: store.read(tf.gather(table, indices)),
                          num_bytes=lambda: int(store.num_bytes() * share))

    def encoded(split: str) -> tf.data.Dataset:
      if split not in parts:
        return self.encoded_loader(split)
      return by_index(split) if self.random_access is not None else pick(
          split, self.encoded_loader)

    def listed(of: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
      # A per-split list (files, names) cut as the splits are.
      def get(split: str) -> list[str]:
        if split not in parts:
          return of(split)
        every = of(self.train_split)
        return [every[i] for i in parts[split]]
      return get

    return dataclasses.replace(
        self, **base.view_fields(self, parts, self.eval_split),
        loader=lambda split: (self.loader(split) if split not in parts
                              else _decoded(encoded(split)) if self.encoded_loader is not None
                              else pick(split, self.loader)),
        encoded_loader=None if self.encoded_loader is None else encoded,
        files=None if self.files is None else listed(self.files),
        names=None if self.names is None else listed(self.names),
        random_access=None if self.random_access is None else random_access)


def get_source(dataset: str, data_dir: str | None = None, *, holdout: float = 0.01,
               holdout_max: int = 5000, file_format: str = "", num_classes: int = 0) -> Source:
  """The `Source` for `dataset` (see the module docstring for the names it takes).

  `holdout`, `holdout_max`: the held-out slice of an unlabeled "images:" folder (images.py).
  `file_format`: how a TFDS dataset that is not prepared yet is written ("" = TFDS's default,
  tfrecord; "array_record" gives training random access, so it can stream).

  TFDS datasets are read from (and, with network access, prepared in) `data_dir`, or TFDS's
  default ($TFDS_DATA_DIR, else ~/tensorflow_datasets) when it is None. A dataset that is
  neither here nor downloadable raises DatasetUnavailableError saying what to put where.
  """
  if dataset == "digits":
    arrays = digits.digits_arrays()
    return Source(name="digits", num_classes=digits.num_classes(),
                  split_sizes={s: len(arrays[s][1]) for s in digits.SPLITS},
                  train_split="train", eval_split="test", loader=digits.digits_dataset)
  if dataset == _FASHION_MNIST:
    return _fashion_mnist_source(data_dir, file_format)
  if dataset.startswith(_IDX_PREFIXES):
    prefix, _, folder = dataset.partition(":")
    return _idx_source(dataset, folder, _FASHION_MNIST_NAMES if prefix == _FASHION_MNIST else ())
  if dataset.startswith(imagefolder.PREFIX):
    return _imagefolder_source(dataset[len(imagefolder.PREFIX):])
  if dataset.startswith(images.PREFIX):
    return _images_source(dataset[len(images.PREFIX):], holdout, holdout_max)
  if seg_datasets.is_segmentation(dataset):
    return _segmentation_images(seg_sources.seg_source(dataset, num_classes, data_dir))
  return _tfds_source(dataset.removeprefix(_TFDS_PREFIX), data_dir, file_format)


def source_for(d: Any) -> Source:
  """The Source that config.data `d` names (dataset, data_dir, holdout, holdout_max)."""
  return get_source(d.dataset, d.data_dir or None, holdout=d.holdout, holdout_max=d.holdout_max,
                    file_format=d.tfds_file_format, num_classes=d.num_classes)


def _fashion_mnist_source(data_dir: str | None, file_format: str) -> Source:
  """TFDS's fashion_mnist where it is prepared; else Debian's files, so that an offline machine
  with them never waits on a download attempt; else TFDS (downloads, or says what to fetch)."""
  if (not tfds.builder(_FASHION_MNIST, data_dir=data_dir).is_prepared()
      and idx.has_files(idx.FASHION_MNIST_DIR)):
    return _idx_source(f"{_FASHION_MNIST}:{idx.FASHION_MNIST_DIR}", idx.FASHION_MNIST_DIR,
                       _FASHION_MNIST_NAMES)
  return _tfds_source(_FASHION_MNIST, data_dir, file_format)


def _idx_source(name: str, folder: str, class_names: tuple[str, ...]) -> Source:
  """The IDX files in `folder` (idx.py) held in memory: grey images served as uint8 RGB.
  Without `class_names` the classes are one more than the largest label, unnamed."""
  if not os.path.isdir(folder):
    raise DatasetUnavailableError(f"IDX dataset folder {folder!r} does not exist")
  num_classes = len(class_names)
  arrays = idx.read_folder(folder, num_classes)

  def loader(split: str) -> tf.data.Dataset:
    images, labels = arrays[split]
    # Grey stays grey (a third of the memory) until each example is served.
    ds = tf.data.Dataset.from_tensor_slices({"image": images[..., None], "label": labels})
    return ds.map(lambda ex: {"image": tf.image.grayscale_to_rgb(ex["image"]),
                              "label": ex["label"]},
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  return Source(name=name, num_classes=num_classes or idx.num_classes(arrays),
                split_sizes={split: len(arrays[split][1]) for split in idx.SPLITS},
                train_split="train", eval_split="test", loader=loader,
                class_names=tuple(class_names))


def _segmentation_images(seg: "seg_sources.SegSource") -> Source:
  """The images of a segmentation dataset (no labels), for pretraining and reconstructions;
  the segment stage reads the SegSource itself."""
  def loader(split: str) -> tf.data.Dataset:
    return seg.load(split).map(lambda ex: {"image": ex["image"],
                                           "label": tf.constant(0, tf.int32)})

  return Source(name=seg.name, num_classes=0, split_sizes=dict(seg.split_sizes),
                train_split=seg.train_split, eval_split=seg.eval_split, loader=loader)


def _imagefolder_source(root: str) -> Source:
  """root/<split>/<class>/<image> files (imagefolder.py), served encoded and decoded."""
  try:
    classes, splits = imagefolder.scan(root)
    eval_split = imagefolder.eval_split(splits)
  except FileNotFoundError as err:
    raise DatasetUnavailableError(str(err)) from err
  return dataclasses.replace(_files_source(f"{imagefolder.PREFIX}{root}", len(classes), splits,
                                            imagefolder.TRAIN_SPLIT, eval_split),
                             class_names=tuple(classes))


def _images_source(root: str, holdout: float, holdout_max: int) -> Source:
  """Every image under `root` (images.py), unlabeled, with a held-out slice for evaluation;
  or, where mae-jax-prepare packed them, the same images from its array_record shards."""
  if prepare.is_prepared(root):
    return _prepared_source(root, holdout, holdout_max)
  try:
    paths, unreadable = images.splits(root, holdout, holdout_max)
  except FileNotFoundError as err:
    raise DatasetUnavailableError(str(err)) from err
  splits = {split: (files, np.zeros(len(files), np.int32)) for split, files in paths.items()}
  return dataclasses.replace(_files_source(f"{images.PREFIX}{root}", 0, splits,
                                           images.TRAIN_SPLIT, images.HOLDOUT_SPLIT),
                             unreadable=unreadable)


def _prepared_source(root: str, holdout: float, holdout_max: int) -> Source:
  """A folder that mae-jax-prepare wrote: the original folder's images, order and splits."""
  store = prepare.Prepared(root)
  held = images.holdout_indices(store.num_images, holdout, holdout_max)
  keep = np.ones(store.num_images, bool)
  keep[held] = False
  ids = {images.TRAIN_SPLIT: np.flatnonzero(keep), images.HOLDOUT_SPLIT: held}

  def random_access(split: str) -> RandomAccess:
    table = tf.constant(ids[split], tf.int64)

    def read(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
      images = tf.numpy_function(lambda i: np.array(store.many(i), object),
                                 [tf.gather(table, indices)], tf.string, stateful=False)
      return tf.ensure_shape(images, [None]), tf.zeros(tf.shape(indices), tf.int32)

    return RandomAccess(read=read, num_bytes=lambda: store.num_bytes(ids[split]))

  def encoded(split: str) -> tf.data.Dataset:
    return _in_order(random_access(split), len(ids[split]))

  @functools.cache
  def every_name() -> list[str]:
    return store.names()

  unreadable = store.manifest.get("unreadable", {})
  return Source(name=f"{images.PREFIX}{root}", num_classes=0,
                split_sizes={split: len(i) for split, i in ids.items()},
                train_split=images.TRAIN_SPLIT, eval_split=images.HOLDOUT_SPLIT,
                loader=lambda split: _decoded(encoded(split)),
                encoded_loader=encoded, random_access=random_access,
                unreadable=Unreadable(unreadable.get("count", 0),
                                      tuple(unreadable.get("first", ()))),
                names=lambda split: [every_name()[i] for i in ids[split]])


def _files_source(name: str, num_classes: int, splits: dict[str, tuple[list[str], np.ndarray]],
                  train_split: str, eval_split: str) -> Source:
  """A Source over image files: {split: (paths, int32 labels)}, served encoded and decoded."""

  def encoded(split: str) -> tf.data.Dataset:
    return imagefolder.encoded_dataset(*splits[split])

  @functools.cache
  def num_bytes(split: str) -> int:
    return _total_size(splits[split][0])

  def random_access(split: str) -> RandomAccess:
    paths, labels = splits[split]
    table, label_table = tf.constant(paths), tf.constant(labels)

    def read(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
      files = tf.map_fn(tf.io.read_file, tf.gather(table, indices), fn_output_signature=tf.string)
      return files, tf.gather(label_table, indices)

    return RandomAccess(read=read, num_bytes=functools.partial(num_bytes, split))

  return Source(name=name, num_classes=num_classes,
                split_sizes={split: len(labels) for split, (_, labels) in splits.items()},
                train_split=train_split, eval_split=eval_split,
                loader=lambda split: _decoded(encoded(split)),
                encoded_loader=encoded, files=lambda split: list(splits[split][0]),
                random_access=random_access)


def _total_size(paths: list[str]) -> int:
  """Bytes of the files `paths` (stat in threads: on network file systems it is I/O)."""
  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    return sum(pool.map(os.path.getsize, paths, chunksize=1024))


def _tfds_source(name: str, data_dir: str | None, file_format: str = "") -> Source:
  """A TFDS dataset with "image" and "label" features; sizes and classes from its metadata.

  Prepared as array_record (file_format, or already so on disk), its splits are also served
  by index (`tfds.data_sources`), which lets training stream them.
  """
  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format=file_format or None)
  except tfds.core.registered.DatasetNotFoundError as err:
    raise ConfigError(f"config.data.dataset: unknown dataset {name!r}: "
                      f"use {_KNOWN_NAMES}.") from err
  features = builder.info.features
  if ("image" not in features or "label" not in features
      or not isinstance(features["label"], tfds.features.ClassLabel)):
    raise ConfigError(f"TFDS dataset {name!r} is not an image-classification dataset: it needs "
                     f"an 'image' and a class 'label' feature, it has {sorted(features.keys())}.")
  if features["image"].np_dtype != np.uint8:
    raise ConfigError(f"TFDS dataset {name!r} has {features['image'].np_dtype} images; "
                     "only uint8 images are supported.")
  prepare_tfds(builder, name)

  split_sizes = {split: info.num_examples for split, info in builder.info.splits.items()}
  eval_split = next((s for s in ("test", "validation") if s in split_sizes), None)
  if "train" not in split_sizes or eval_split is None:
    raise ConfigError(f"TFDS dataset {name!r} needs a 'train' split and a 'test' or 'validation' "
                     f"split; it has {sorted(split_sizes)}.")
  loader = functools.partial(load_tfds_split, builder)
  encoded = random_access = None
  if isinstance(features["image"], tfds.features.Image):  # stored as encoded PNG/JPEG bytes
    encoded = functools.partial(load_tfds_split, builder, decode=False)
    if set(builder.info.available_file_formats()) & set(
        tfds.core.file_adapters.FileFormat.with_random_access()):
      # TFDS reads array_record only by index (no tf.data): every path goes through that.
      random_access = functools.partial(_tfds_random_access, builder)
      encoded = lambda split: _in_order(random_access(split), split_sizes[split])  # noqa: E731
      loader = lambda split: _decoded(encoded(split))  # noqa: E731
  return Source(name=name, num_classes=features["label"].num_classes, split_sizes=split_sizes,
                train_split="train", eval_split=eval_split, loader=loader,
                encoded_loader=encoded, random_access=random_access,
                class_names=tuple(features["label"].names))


def _decoded(encoded: tf.data.Dataset) -> tf.data.Dataset:
  """{"image": encoded bytes, "label"} examples with their images decoded to uint8 RGB."""
  return encoded.map(lambda ex: {"image": decoding.decode(ex["image"]), "label": ex["label"]},
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _in_order(store: RandomAccess, num_examples: int) -> tf.data.Dataset:
  """Fixed-order {"image": encoded bytes, "label": int32} of a store, read in chunks."""

  def chunk(indices):
    images, labels = store.read(indices)
    return {"image": images, "label": labels}

  ds = tf.data.Dataset.range(num_examples).batch(_READ_CHUNK)
  return ds.map(chunk, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()


def _tfds_random_access(builder: tfds.core.DatasetBuilder, split: str) -> RandomAccess:
  """Examples of an array_record TFDS split by index: encoded image bytes and label."""
  records = builder.as_data_source(split, decoders={"image": tfds.decode.SkipDecoding()})

  def read_many(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    examples = records.__getitems__([int(i) for i in indices])
    return (np.array([e["image"] for e in examples], object),
            np.array([e["label"] for e in examples], np.int32))

  def read(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    images, labels = tf.numpy_function(read_many, [indices], (tf.string, tf.int32),
                                       stateful=False)
    return tf.ensure_shape(images, [None]), tf.ensure_shape(labels, [None])

  return RandomAccess(read=read, num_bytes=lambda: builder.info.splits[split].num_bytes)
