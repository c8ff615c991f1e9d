"""A corrupt image never stops a run: files whose header does not parse are left out at the
scan, files whose data does not decode (truncated JPEGs and PNGs) are skipped where training
decodes them, the same way in memory, streamed and packed, on every replay; both are counted."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from mae_jax import experiment, prepare
from mae_jax.data import decoding, images, pipeline, skips, sources
from mae_jax.data.tfsetup import tf
from tests.helpers import load_config


def _encoded(fmt: str, size: tuple[int, int] = (40, 52), seed: int = 0) -> bytes:
  pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), np.uint8)
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format=fmt)
  return out.getvalue()


def _cut_jpeg(data: bytes) -> bytes:
  """The JPEG up to its start of scan, with no scan data: no window of it decodes."""
  sos = data.index(b"\xff\xda")
  return data[:sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")]


def _cut_png(data: bytes) -> bytes:
  """The PNG cut inside its pixel data (IHDR, and so the size, intact)."""
  return data[:data.index(b"IDAT") + 40]


def _plant(root: str) -> dict[str, list[str]]:
  """15 good JPEGs and PNGs of two classes at depths 1-2; 3 truncated images (a PNG that sorts
  first, so is held out, and two JPEGs); a zero-byte file and a text file named .jpg. Returns
  the paths of each kind, the good ones in the folder's order."""
  files = {"good": [], "cut": [], "unreadable": []}

  def write(rel: str, data: bytes, kind: str) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
      f.write(data)
    files[kind].append(path)

  for k in sorted(range(15), key=lambda k: (k % 2, k)):
    fmt = "PNG" if k % 4 == 3 else "JPEG"
    folder = ("cat", os.path.join("dog", "small"))[k % 2]
    write(os.path.join(folder, f"{k:02d}.{fmt.lower()}"),
          _encoded(fmt, (36 + k, 60 - k), seed=k), "good")
  write("a_cut.png", _cut_png(_encoded("PNG", seed=20)), "cut")
  write(os.path.join("cat", "cut.jpg"), _cut_jpeg(_encoded("JPEG", seed=21)), "cut")
  write(os.path.join("dog", "small", "06_cut.jpeg"), _cut_jpeg(_encoded("JPEG", seed=22)),
        "cut")
  write(os.path.join("dog", "empty.jpg"), b"", "unreadable")
  write(os.path.join("cat", "notes.jpg"), b"not an image, named like one", "unreadable")
  return files


def test_header_gives_the_decoders_size_and_never_fails():
  header = tf.function(decoding.header)
  for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP"):
    data = _encoded(fmt, (37, 53))
    assert tuple(header(data)["size"].numpy()) == (37, 53), fmt
    assert decoding.decode(data).shape == (37, 53, 3), fmt
  # A cut PNG keeps its size; what is no image gets 1 x 1; the decoders refuse them all.
  for data, size in ((_cut_png(_encoded("PNG", (37, 53))), (37, 53)), (b"", (1, 1)),
                     (b"not an image", (1, 1)), (_encoded("PNG")[:12], (1, 1)),
                     (_cut_jpeg(_encoded("JPEG", (37, 53))), (37, 53))):
    assert tuple(header(data)["size"].numpy()) == size
    with pytest.raises(tf.errors.InvalidArgumentError):
      decoding.decode(data)


def test_the_scan_leaves_out_files_whose_header_does_not_parse(tmp_path):
  files = _plant(str(tmp_path))
  # A JPEG cut between its size (which PIL reads) and its start of scan (which libjpeg needs).
  jpeg = _encoded("JPEG")
  header_cut = str(tmp_path / "dog" / "header_cut.jpg")
  with open(header_cut, "wb") as f:
    f.write(jpeg[:jpeg.index(b"\xff\xc4")])
  lines = []
  kept, unreadable = images.scan(images.list_images(str(tmp_path)), log=lines.append)
  assert sorted(kept) == sorted(files["good"] + files["cut"])
  assert unreadable.count == 3 and set(unreadable.first) == {*files["unreadable"], header_cut}
  assert len(lines) == 1 and lines[0].startswith("skipped 3 of 21 files that are not readable")


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[dict[str, list[str]], dict[str, sources.Source]]:
  """The planted folder's files, and its sources: the folder (read into memory or streamed)
  and its mae-jax-prepare packing."""
  tmp = tmp_path_factory.mktemp("bad_images")
  root, packed = str(tmp / "photos"), str(tmp / "packed")
  files = _plant(root)
  prepare.prepare(root, packed, shard_size=5, workers=1, log=lambda line: None)
  folder = sources.get_source(f"images:{root}", holdout=0.1, holdout_max=2)
  return files, {"memory": folder, "stream": folder,
                 "packed": sources.get_source(f"images:{packed}", holdout=0.1, holdout_max=2)}


def test_training_skips_what_does_not_decode_the_same_way_on_every_replay(planted):
  files, by_mode = planted
  folder = by_mode["memory"]
  # 18 readable: the first and the last held out (a cut PNG, a good image), 16 to train on.
  assert folder.split_sizes == {"train": 16, "holdout": 2}
  assert folder.files("holdout") == [files["cut"][0], files["good"][-1]]
  assert by_mode["packed"].unreadable == folder.unreadable and folder.unreadable.count == 2
  args = dict(batch_size=8, image_size=16, crop_scale=(0.2, 1.0), hflip=True, seed=5)
  steps, start = 5, {"memory": 0, "stream": 0, "packed": 1}   # 2 steps an epoch
  runs, lines = {}, {}
  for mode, source in by_mode.items():
    lines[mode] = []
    record = pipeline.skip_log(source, "train", log=lines[mode].append)
    batches = pipeline.train_batches(source, "train", stream=mode != "memory", skips=record,
                                     start_step=start[mode], **args)
    runs[mode] = [next(batches)["image"] for _ in range(start[mode], steps)]
    # Two epochs each, the packed one resumed after its first step.
    assert record.result()[skips.RESULT_KEY] == {
        "count": 4, "at_scan": 2, "at_decode": 2,
        "first": sorted(files["unreadable"]) + files["cut"][1:]}, mode
    assert lines[mode][-1] == (
        f"epoch 2: skipped 2 images that do not decode (their batch slots took the next "
        f"images): {files['cut'][1]}, {files['cut'][2]}; 2 files in all so far"), mode
  assert lines["stream"] == lines["memory"] and len(lines["memory"]) == 2
  np.testing.assert_array_equal(np.stack(runs["stream"]), np.stack(runs["memory"]))
  np.testing.assert_array_equal(np.stack(runs["packed"]), np.stack(runs["memory"][1:]))
  # Each skipped slot took the image of a later step: it appears twice in the stream.
  flat = np.concatenate(runs["memory"])
  assert len(flat) - len({image.tobytes() for image in flat}) >= 2 * 2


def test_evaluation_leaves_out_what_does_not_decode(planted):
  files, by_mode = planted
  for source in (by_mode["memory"], by_mode["packed"]):
    for shards in (1, 2):
      masks = [[float(b["mask"].sum()) for b in pipeline.eval_batches(
          source, "holdout", batch_size=1, image_size=16, num_shards=shards, shard_index=k)]
          for k in range(shards)]
      assert sum(map(sum, masks)) == 1 and len({len(m) for m in masks}) == 1
    # The good image moves up into the cut one's slot; the last slot is padding.
    batch = next(pipeline.eval_batches(source, "holdout", batch_size=2, image_size=16))
    assert list(batch["mask"]) == [1.0, 0.0] and not batch["image"][1].any()
    with open(files["good"][-1], "rb") as f:
      image = decoding.decode(f.read())
    np.testing.assert_array_equal(batch["image"][0],
                                  pipeline._center_crop(image, int(16 / 0.875), 16, "HWC"))


def test_an_image_folder_without_a_scan_skips_them_at_decoding_with_their_labels(tmp_path):
  """imagefolder: reads no header ahead, so an empty file and text named .jpg reach decoding."""
  root = tmp_path / "folder"
  for split, count in (("train", 6), ("val", 2)):
    for c, name in enumerate(("cat", "dog")):
      for k in range(count):
        (root / split / name).mkdir(parents=True, exist_ok=True)
        (root / split / name / f"{k}.jpg").write_bytes(_encoded("JPEG", seed=10 * c + k))
  (root / "train" / "cat" / "empty.jpg").write_bytes(b"")
  (root / "train" / "dog" / "cut.jpg").write_bytes(_cut_jpeg(_encoded("JPEG", seed=99)))
  (root / "val" / "dog" / "notes.jpg").write_bytes(b"not an image")
  source = sources.get_source(f"imagefolder:{root}")
  assert source.split_sizes == {"train": 14, "val": 5}
  record = pipeline.skip_log(source, "train", log=lambda line: None)
  batches = pipeline.train_batches(source, "train", batch_size=7, image_size=16,
                                   crop_scale=(0.5, 1.0), hflip=False, seed=1, skips=record)
  seen = {}
  for _ in range(4):   # two epochs
    batch = next(batches)
    for image, label in zip(batch["image"], batch["label"]):
      # An image taken into a skipped slot brings its own label.
      assert seen.setdefault(image.tobytes(), label) == label
  assert record.result()[skips.RESULT_KEY] == {
      "count": 2, "at_scan": 0, "at_decode": 2,
      "first": [str(root / "train" / "cat" / "empty.jpg"), str(root / "train" / "dog" / "cut.jpg")]}
  masks = [b["mask"] for b in pipeline.eval_batches(source, "val", batch_size=4, image_size=16)]
  assert np.concatenate(masks).sum() == 4


@pytest.mark.slow
def test_pretraining_skips_and_counts_bad_images_and_a_resumed_run_equals_it(tmp_path, capsys):
  import shutil  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from mae_jax import weights  # pylint: disable=g-import-not-at-top
  files = _plant(str(tmp_path / "photos"))
  config = load_config("digits.py", "smoke")
  config.data.dataset = f"images:{tmp_path / 'photos'}"
  config.data.holdout, config.data.holdout_max, config.data.eval_batch_size = 0.1, 2, 4
  config.stages, config.baselines = "pretrain", ""
  config.pretrain.update(batch_size=8, num_steps=5, checkpoint_every_steps=2)   # 2 per epoch

  def params(workdir):
    loaded, _ = weights.restore_export(os.path.join(workdir, "pretrain", "export"))
    return traverse_util.flatten_dict(loaded, sep="/")

  once = str(tmp_path / "once")
  summary = experiment.run(config, once)
  expected = {"count": 4, "at_scan": 2, "at_decode": 2,
              "first": sorted(files["unreadable"]) + files["cut"][1:]}
  assert summary["pretrain"]["skipped_files"] == expected
  with open(os.path.join(once, "pretrain", "result.json")) as f:
    assert json.load(f)["skipped_files"] == expected
  with open(os.path.join(once, "summary.json")) as f:
    assert json.load(f)["pretrain"]["skipped_files"] == expected
  out = capsys.readouterr().out
  assert out.count("[pretrain] epoch ") == 2 and "[pretrain] epoch 2: skipped 2 images" in out
  assert np.isfinite(summary["pretrain"]["loss"]) and np.isfinite(summary["pretrain"]["eval_loss"])

  # The same run stopped after step 4 (its last checkpoint, mid-run), then run again.
  resumed = str(tmp_path / "resumed")
  experiment.run(config, resumed)
  stage = os.path.join(resumed, "pretrain")
  shutil.rmtree(os.path.join(stage, "checkpoints", "5"))
  shutil.rmtree(os.path.join(stage, "export"))
  os.remove(os.path.join(stage, "result.json"))
  os.remove(os.path.join(resumed, "summary.json"))
  capsys.readouterr()
  experiment.run(config, resumed)
  assert "[pretrain] resuming from step 4" in capsys.readouterr().out
  a, b = params(once), params(resumed)
  assert a.keys() == b.keys()
  assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) <= 1e-6
