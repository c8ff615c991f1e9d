"""Your own images: a folder root/<split>/<class>/<image>, like torchvision's ImageFolder.

  root/train/cat/0001.jpg     root/val/cat/0107.png     ...

Splits are the sub-folders of root; classes are the sub-folders of the training split ("train"),
sorted by name, label i being the i-th. The evaluation split is the first of "val",
"validation", "test" that exists. Files with the extensions in `EXTENSIONS` count (case
ignored); other files are ignored. Order within a split: sorted relative paths, so fixed.
JPEG, PNG, GIF (first frame) and BMP decode; gray and RGBA images become RGB.
"""

import os

import numpy as np

from mae_jax.data.tfsetup import tf
from mae_jax.errors import ConfigError

PREFIX = "imagefolder:"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("val", "validation", "test")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def scan(root: str) -> tuple[list[str], dict[str, tuple[list[str], np.ndarray]]]:
  """(class names, {split: (file paths, int32 labels)}) of the folder `root`.

  Raises FileNotFoundError that shows the expected layout when `root` does not have it.
  """
  layout = (f"expected {root}/{TRAIN_SPLIT}/<class>/<image> and {root}/val/<class>/<image> "
            f"(images: {', '.join(EXTENSIONS)}), e.g. {root}/{TRAIN_SPLIT}/cat/0001.jpg")
  if not os.path.isdir(root):
    raise FileNotFoundError(f"Image folder dataset {root!r} does not exist: {layout}.")
  train_dir = os.path.join(root, TRAIN_SPLIT)
  if not os.path.isdir(train_dir):
    raise FileNotFoundError(f"Image folder dataset {root!r} has no {TRAIN_SPLIT!r} split: "
                            f"{layout}.")
  classes = sorted(d.name for d in os.scandir(train_dir) if d.is_dir())
  index = {name: i for i, name in enumerate(classes)}
  splits = {}
  for split in sorted(d.name for d in os.scandir(root) if d.is_dir()):
    paths, labels = [], []
    for class_dir in sorted(d.name for d in os.scandir(os.path.join(root, split)) if d.is_dir()):
      if class_dir not in index:
        raise ConfigError(f"{root}/{split}/{class_dir} is a class that {train_dir} does not have; "
                         f"its classes are the training split's sub-folders.")
      for dirpath, dirnames, filenames in os.walk(os.path.join(root, split, class_dir)):
        dirnames.sort()  # os.walk visits in this order: fixed, whatever the file system's
        for name in sorted(filenames):
          if name.lower().endswith(EXTENSIONS):
            paths.append(os.path.join(dirpath, name))
            labels.append(index[class_dir])
    if paths:
      splits[split] = (paths, np.asarray(labels, np.int32))
  if TRAIN_SPLIT not in splits:
    raise FileNotFoundError(f"Image folder dataset {root!r} has no images in {train_dir}: "
                            f"{layout}.")
  return classes, splits


def eval_split(splits) -> str:
  """The evaluation split: "val", "validation" or "test", whichever exists first."""
  for name in EVAL_SPLITS:
    if name in splits:
      return name
  raise FileNotFoundError(f"Image folder dataset has splits {sorted(splits)}; it needs an "
                          f"evaluation split named one of {EVAL_SPLITS}.")


def encoded_dataset(paths: list[str], labels: np.ndarray) -> tf.data.Dataset:
  """Fixed-order {"image": encoded file bytes (tf.string), "label": int32}."""
  ds = tf.data.Dataset.from_tensor_slices({"image": paths, "label": labels})
  return ds.map(lambda ex: {"image": tf.io.read_file(ex["image"]), "label": ex["label"]},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
