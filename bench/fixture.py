"""Photo-sized JPEGs for the input benchmark, in ImageFolder layout (root/{train,val}/<class>/).

  python -m mae_jax_bench --make_fixture=/tmp/photos --fixture_images=1024 --fixture_classes=8

Random crops, scales, flips, orientations and colour shifts of scikit-learn's two sample photos
(shipped with scikit-learn, no download): the JPEG statistics, and so the decoding cost, of
natural images, which noise or flat colours would not have.
"""

import os

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

FIXTURE_SIZE = (500, 375)     # width, height: a typical ImageNet / Oxford pets photo


def make_fixture(root: str, num_images: int, num_classes: int, seed: int = 0) -> None:
  """Writes `num_images` training JPEGs (quality 90, ~500x375) and num_images // 8 for val.

  Val has at least one image per class; image i goes to class i % num_classes.
  """
  photos = [Image.fromarray(p) for p in load_sample_images().images]   # 427x640 RGB
  rng = np.random.default_rng(seed)
  for split, count in (("train", num_images), ("val", max(num_images // 8, num_classes))):
    for i in range(count):
      photo = photos[i % len(photos)]
      w, h = FIXTURE_SIZE if rng.random() < 0.75 else FIXTURE_SIZE[::-1]
      scale = rng.uniform(0.5, 1.0)
      cw, ch = int(photo.width * scale), int(photo.width * scale * h / w)
      ch = min(ch, photo.height)
      left, top = rng.integers(0, photo.width - cw + 1), rng.integers(0, photo.height - ch + 1)
      image = photo.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BICUBIC)
      if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
      pixels = np.asarray(image, np.float32) * rng.uniform(0.8, 1.2, 3)
      image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
      folder = os.path.join(root, split, f"class_{i % num_classes:03d}")
      os.makedirs(folder, exist_ok=True)
      image.save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)
