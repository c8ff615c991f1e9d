"""TinyImageNet as a TFDS dataset: `tfds.builder("tiny_imagenet")` once this module is imported
(tfds_prep.py imports it: every TFDS source and any use of `sources.get_source`).

Stanford CS231n's 64x64 subset of ImageNet: 200 classes with 500 training and 50 validation
images each, all in one archive, `tiny-imagenet-200.zip` (~250 MB, `URL` below).

Splits: "train" (100,000; labels from the class folders) and "validation" (10,000; labels from
val/val_annotations.txt). The archive's 10,000 test images have no labels, so this builder has no
"test" split; mae_jax evaluates on "validation".

Features:
  * "image": uint8 (64, 64, 3). The archive's JPEG bytes are stored unchanged: no second lossy
    encoding, and smaller than decoded pixels re-encoded as PNG. A few of them are grayscale;
    they still decode to RGB (three equal channels) because the feature declares 3 channels
    and TFDS decodes with that many.
  * "label": ClassLabel whose names are the WordNet ids ("n01443537"), sorted, as in TFDS's
    imagenet2012: stable, unique, and what the archive's folders and annotations use.
  * "id": the archive file name ("n01443537_0.JPEG", "val_0.JPEG"), handy for debugging.

Human-readable class names ("goldfish, Carassius auratus", from words.txt) are saved with the
prepared dataset as metadata (metadata.json); `class_names(data_dir)` returns them in label
order. Metadata rather than a feature: one list per dataset instead of a string per example,
and no uniqueness requirement (ClassLabel names must be unique; WordNet glosses need not be).

The archive is taken from the TFDS manual dir when it is there (no download), else downloaded.
Without network access and without it there, preparation fails at once with a
DatasetUnavailableError that says where to put it.
"""

import posixpath
import zipfile
from typing import Iterator

from etils import epath
import requests
import tensorflow_datasets as tfds

from mae_jax.data.tfsetup import tf
from mae_jax.errors import DatasetUnavailableError

NAME = "tiny_imagenet"
ARCHIVE = "tiny-imagenet-200.zip"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
NUM_CLASSES = 200
IMAGE_SIZE = 64

_ROOT = "tiny-imagenet-200"
_METADATA_KEY = "class_names"
# TFDS's downloader retries a failed connection 10 times with exponential backoff: minutes before
# an offline machine gives up. One probe without retries fails in well under this instead.
_PROBE_TIMEOUT_S = 10

_CITATION = """\
@misc{le2015tiny,
  title = {Tiny ImageNet Visual Recognition Challenge},
  author = {Le, Ya and Yang, Xuan},
  howpublished = {CS231N course, Stanford University},
  year = {2015}
}
"""


class TinyImagenet(tfds.core.GeneratorBasedBuilder):
  """TinyImageNet (200 classes, 64x64): "train" and "validation" splits, see the module doc."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Optional: without network access, download {URL} elsewhere and put the file {ARCHIVE}, not
  extracted, in the TFDS manual dir, by default <data_dir>/downloads/manual/ (<data_dir> being
  mae_jax's --config.data.data_dir, else $TFDS_DATA_DIR, else ~/tensorflow_datasets). When the
  file is there it is used and nothing is downloaded.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="TinyImageNet: 200 ImageNet classes at 64x64 pixels.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
                                         encoding_format="jpeg"),
            # The names (WordNet ids) are only known from the archive: set when preparing.
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://cs231n.stanford.edu/",
        citation=_CITATION,
        # Filled with the human-readable class names when preparing; saved as metadata.json.
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager,
                        ) -> dict[str, Iterator[tuple[str, dict]]]:
    archive = _archive_path(dl_manager)
    with archive.open("rb") as file, zipfile.ZipFile(file) as zf:
      wnids = sorted(_read_lines(zf, "wnids.txt"))
      words = dict(line.split("\t", 1) for line in _read_lines(zf, "words.txt"))
    if len(wnids) != NUM_CLASSES or len(set(wnids)) != NUM_CLASSES:
      raise ValueError(f"{archive}: expected {NUM_CLASSES} distinct WordNet ids in "
                       f"{_ROOT}/wnids.txt, found {len(set(wnids))}.")
    missing = [wnid for wnid in wnids if wnid not in words]
    if missing:
      raise ValueError(f"{archive}: {_ROOT}/words.txt has no names for {missing[:5]}.")
    self.info.features["label"].names = wnids
    self.info.metadata[_METADATA_KEY] = [words[wnid].strip() for wnid in wnids]
    return {split: self._generate_examples(archive, split) for split in ("train", "validation")}

  def _generate_examples(self, archive: epath.Path, split: str,
                         ) -> Iterator[tuple[str, dict]]:
    with archive.open("rb") as file, zipfile.ZipFile(file) as zf:
      for member, label in _labelled_images(zf, split):
        image = zf.read(member)
        _check_image(image, member)
        file_name = posixpath.basename(member)
        yield file_name, {"image": image, "label": label, "id": file_name}


def class_names(builder_or_data_dir: tfds.core.DatasetBuilder | str | None = None) -> list[str]:
  """Human-readable names of the prepared dataset's classes, in label order (from words.txt).

  Takes the `tiny_imagenet` builder or the TFDS data_dir it is prepared in (None: TFDS's
  default). The label names themselves, `info.features["label"].names`, are the WordNet ids.
  """
  builder = builder_or_data_dir
  if not isinstance(builder, tfds.core.DatasetBuilder):
    builder = tfds.builder(NAME, data_dir=builder_or_data_dir)
  try:
    # Indexing, not .get(): TFDS loads a prepared dataset's metadata lazily on item access.
    return list(builder.info.metadata[_METADATA_KEY])
  except (KeyError, TypeError) as err:
    raise ValueError(f"No TinyImageNet class names in {builder.data_dir}: prepare the dataset "
                     "first (builder.download_and_prepare()).") from err


def _archive_path(dl_manager: tfds.download.DownloadManager) -> epath.Path:
  """The archive from the manual dir if it is there, else downloaded; clear error if neither."""
  try:
    manual = dl_manager.manual_dir / ARCHIVE
  except AssertionError:  # TFDS's way of saying that the manual dir is missing or empty
    manual = None
  if manual is not None and manual.exists():
    return manual
  message = (
      f"Could not download TFDS dataset {NAME!r} (no network access?). Download {URL} on a "
      f"machine with network access and put {ARCHIVE}, not extracted, in the TFDS manual dir "
      f"{dl_manager.download_dir / 'manual'}/, i.e. <data_dir>/downloads/manual/ with "
      "<data_dir> from --config.data.data_dir (else $TFDS_DATA_DIR, else ~/tensorflow_datasets).")
  try:
    requests.head(URL, timeout=_PROBE_TIMEOUT_S, allow_redirects=False)
  except (requests.ConnectionError, requests.Timeout) as err:
    raise DatasetUnavailableError(message) from err
  try:
    return epath.Path(dl_manager.download(URL))
  except (OSError, tfds.download.DownloadError) as err:
    raise DatasetUnavailableError(message) from err


def _read_lines(zf: zipfile.ZipFile, name: str) -> list[str]:
  """Non-empty lines of the archive's text file `<root>/<name>`."""
  text = zf.read(f"{_ROOT}/{name}").decode("utf-8")
  return [line for line in text.splitlines() if line.strip()]


def _labelled_images(zf: zipfile.ZipFile, split: str) -> Iterator[tuple[str, str]]:
  """(archive member, WordNet id) of each image of `split`, in archive-name order."""
  if split == "train":
    # <root>/train/<wnid>/images/<wnid>_<k>.JPEG; the class folders also hold <wnid>_boxes.txt.
    for member in sorted(zf.namelist()):
      parts = member.split("/")
      if len(parts) == 5 and parts[1] == "train" and parts[3] == "images" and _is_jpeg(member):
        yield member, parts[2]
  elif split == "validation":
    # val_annotations.txt: "val_0.JPEG\tn03444034\t0\t32\t44\t62" (file, wnid, bounding box).
    labels = dict(line.split("\t")[:2] for line in _read_lines(zf, "val/val_annotations.txt"))
    prefix = f"{_ROOT}/val/images/"
    for member in sorted(zf.namelist()):
      if member.startswith(prefix) and _is_jpeg(member):
        file_name = member[len(prefix):]
        if file_name not in labels:
          raise ValueError(f"{member} has no label in {_ROOT}/val/val_annotations.txt")
        yield member, labels[file_name]
  else:
    raise ValueError(f"TinyImageNet has splits 'train' and 'validation', not {split!r}")


def _is_jpeg(member: str) -> bool:
  return member.lower().endswith((".jpeg", ".jpg"))


def _check_image(image: bytes, member: str) -> None:
  """Fails loudly unless `image` is a 64x64 gray or RGB JPEG (what the feature promises)."""
  # Reads the JPEG header only: cheap, while catching a corrupt or unexpected file at
  # preparation time rather than in the middle of a training run.
  height, width, channels = (int(v) for v in tf.io.extract_jpeg_shape(image))
  if (height, width) != (IMAGE_SIZE, IMAGE_SIZE) or channels not in (1, 3):
    raise ValueError(f"{member}: expected a {IMAGE_SIZE}x{IMAGE_SIZE} gray or RGB JPEG, got "
                     f"{height}x{width} with {channels} channels.")
