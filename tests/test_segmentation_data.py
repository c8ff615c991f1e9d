"""Segmentation data: ADE20K / segfolder layouts on generated files, digits canvases, joint
augmentation, eval batches, and the segment stage end to end with its prediction PNGs."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from mae_jax import confusion, experiment
from mae_jax.data import seg_pipeline, seg_sources
from mae_jax.errors import ConfigError, UserError
from tests.helpers import load_config


def _write_ade(root, sizes=((40, 60), (48, 32), (30, 30)), classes=4, seed=0):
  """root/images/{training,validation}/*.jpg + annotations/*.png with values 0..classes."""
  rng = np.random.default_rng(seed)
  labels = {}
  for split in seg_sources.FOLDER_SPLITS:
    os.makedirs(root / "images" / split)
    os.makedirs(root / "annotations" / split)
    for i, (h, w) in enumerate(sizes):
      name = f"ADE_{split}_{i:08d}"
      Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
          root / "images" / split / f"{name}.jpg")
      label = rng.integers(0, classes + 1, (h, w)).astype(np.uint8)
      Image.fromarray(label).save(root / "annotations" / split / f"{name}.png")
      labels[name] = label
  return labels


def test_ade20k_layout_reads_labels_with_zero_ignored(tmp_path):
  labels = _write_ade(tmp_path)
  src = seg_sources.seg_source(f"ade20k:{tmp_path}")
  assert src.num_classes == 150 and src.split_sizes == {"training": 3, "validation": 3}
  examples = list(src.load("validation").as_numpy_iterator())
  for ex in examples:
    raw = labels[ex["name"].decode()]
    assert ex["image"].shape == raw.shape + (3,)
    np.testing.assert_array_equal(ex["label"], np.where(raw == 0, 255, raw - 1))
    # Predictions go back to the annotation encoding: class k -> k + 1, ignore -> 0.
    np.testing.assert_array_equal(src.to_file_labels(ex["label"]), raw)


def test_segfolder_bad_input_is_one_clear_line(tmp_path):
  _write_ade(tmp_path, classes=4)
  with pytest.raises(ConfigError, match="num_classes"):
    seg_sources.seg_source(f"segfolder:{tmp_path}")
  src = seg_sources.seg_source(f"segfolder:{tmp_path}", num_classes=3)   # labels go up to 4
  with pytest.raises(UserError, match=r"ADE_validation_\d+\.png: a label value above the 3 "):
    list(seg_pipeline.eval_batches(src, "validation", batch_size=2, size=32))
  os.remove(tmp_path / "annotations" / "training" / "ADE_training_00000001.png")
  with pytest.raises(ConfigError, match="ADE_training_00000001.jpg has no annotation"):
    seg_sources.seg_source(f"segfolder:{tmp_path}", num_classes=4)
  bad = tmp_path / "bad"
  _write_ade(bad, classes=4)
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(
      bad / "annotations" / "validation" / "ADE_validation_00000000.png")
  src = seg_sources.seg_source(f"segfolder:{bad}", num_classes=4)
  with pytest.raises(UserError, match="ADE_validation_00000000.png: annotation size differs"):
    list(seg_pipeline.eval_batches(src, "validation", batch_size=2, size=32))


def test_digits_canvases_label_strokes_with_their_digit():
  images, labels = seg_sources.digits_seg_arrays()["test"]
  assert images.shape == (300, 64, 64, 3) and labels.shape == (300, 64, 64)
  ink = images[..., 0]
  assert set(np.unique(labels)) == set(range(11))
  assert (ink[labels > 0] >= 96).all() and (labels[ink < 96] == 0).all()


def test_train_augmentation_keeps_labels_nearest_and_is_deterministic(tmp_path):
  _write_ade(tmp_path, classes=4)
  src = seg_sources.seg_source(f"segfolder:{tmp_path}", num_classes=4)
  kwargs = dict(batch_size=2, crop=32, scale=(64, 32), ratio_range=(0.5, 2.0),
                cat_max_ratio=0.75, hflip=True, distort=True, seed=3)
  first = [next(seg_pipeline.train_batches(src, "training", **kwargs)) for _ in range(2)]
  np.testing.assert_array_equal(first[0]["image"], first[1]["image"])
  it = seg_pipeline.train_batches(src, "training", **kwargs)
  batches = [next(it) for _ in range(3)]
  for b in batches:
    assert b["image"].shape == (2, 32, 32, 3) and b["label"].shape == (2, 32, 32)
    # Nearest-neighbour only: no value that is not a class id (0..3) or the ignore label.
    assert set(np.unique(b["label"])) <= {0, 1, 2, 3, 255}
  # A resumed stream (start_step 2) continues with the same batch.
  resumed = next(seg_pipeline.train_batches(src, "training", start_step=2, **kwargs))
  np.testing.assert_array_equal(resumed["label"], batches[2]["label"])


def test_eval_batches_keep_labels_at_their_own_size(tmp_path):
  labels = _write_ade(tmp_path, classes=4)
  src = seg_sources.seg_source(f"segfolder:{tmp_path}", num_classes=4)
  batches = list(seg_pipeline.eval_batches(src, "validation", batch_size=2, size=32))
  assert len(batches) == 2 and batches[1]["mask"].tolist() == [1.0, 0.0]
  first, second = batches[0]["host_pieces"]
  assert batches[0]["image"].shape == (2, 32, 32, 3)
  # 40x60 and 48x32 fitted to a longer side of 32: one piece each, the label as annotated.
  assert first["box"] == (0, 0, 21, 32) and second["box"] == (0, 0, 32, 21)
  assert first["label"].shape == (40, 60) and first["done"]
  assert batches[1]["host_pieces"][1] is None
  names = [p["name"] for b in batches for p in b["host_pieces"] if p is not None]
  assert sorted(labels) == sorted(names + [f"ADE_training_{i:08d}" for i in range(3)])


def test_slide_windows_cover_the_image_flush_with_its_edges():
  assert seg_pipeline.slide_windows(20, 20, 32, 16) == [(0, 0, 20, 20)]
  boxes = seg_pipeline.slide_windows(50, 70, 32, 21)
  covered = np.zeros((50, 70), int)
  for y1, x1, y2, x2 in boxes:
    assert (y2 - y1, x2 - x1) == (32, 32)
    covered[y1:y2, x1:x2] += 1
  assert covered.min() >= 1 and max(b[2] for b in boxes) == 50 and max(b[3] for b in boxes) == 70
  assert len(boxes) == 2 * 3


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_stitched_predictions_equal_a_per_pixel_model(tmp_path, mode):
  # Logits that depend on each pixel alone must come back as that function of the image,
  # whatever the windows and overlaps: what remains is the resize to the annotation size.
  _write_ade(tmp_path, sizes=((40, 60), (48, 32), (70, 50)), classes=4)
  src = seg_sources.seg_source(f"segfolder:{tmp_path}", num_classes=4)
  stitcher = seg_pipeline.Stitcher(32)
  done = {}
  for b in seg_pipeline.eval_batches(src, "validation", batch_size=3, size=32, mode=mode,
                                     stride=20, scale=(64, 32)):
    red = b["image"][..., 0].astype(np.float32)
    logits = np.stack([red, 255 - red, np.full_like(red, 100.0)], axis=-1)   # (B, 32, 32, 3)
    for piece_logits, piece in zip(logits, b["host_pieces"]):
      if piece is not None:
        out = stitcher.add(piece_logits, piece)
        if out is not None:
          done[out[0]["name"]] = (out[0], out[1])
  assert len(done) == 3 and not stitcher.open
  for first, pred in done.values():
    assert pred.shape == first["label"].shape
    red = seg_pipeline.resize_bilinear_image(first["image"], first["label"].shape)[..., 0]
    want = np.argmax(np.stack([red, 255 - red, np.full_like(red, 100.0)], -1), -1)
    assert np.mean(pred == want) > 0.97   # only ties at the class boundaries may differ


def test_ade20k_study_resizes_every_image_to_256_and_keeps_the_mmseg_default(tmp_path):
  """configs/ade20k.py:study as the study ran: 256 x 256 images (aspect not kept) for training
  and evaluation, 400 epochs, MAE vs random init; the default stays mmsegmentation's."""
  from mae_jax.tasks import segmentation  # pylint: disable=g-import-not-at-top
  default, study = load_config("ade20k.py"), load_config("ade20k.py", "study")
  assert default.segment.keep_ratio and default.segment.eval_mode == "slide"
  assert (default.segment.crop_size, default.segment.num_steps) == (512, 160000)
  s = study.segment
  assert (s.keep_ratio, tuple(s.scale), tuple(s.ratio_range), s.crop_size) == (
      False, (256, 256), (1.0, 1.0), 256)
  assert (s.eval_mode, s.eval_size, s.num_epochs, s.num_steps) == ("whole", 256, 400, 0)
  assert study.baselines == "segment_random_init"
  experiment.validate(study)
  labels = _write_ade(tmp_path, classes=4)
  src = seg_sources.seg_source(f"ade20k:{tmp_path}")
  study.segment.update(batch_size=3, photometric=False)
  train_data = segmentation._train_data(study, src)   # pylint: disable=protected-access
  batch = next(train_data.batches(0, 0, 1, 0))
  assert batch["image"].shape == (3, 256, 256, 3)
  # Each label map is a whole annotation resized to 256 x 256 (maybe flipped): no padding.
  resized = [seg_pipeline.resize_nearest(np.where(raw == 0, 255, raw - 1).astype(np.uint8),
                                         (256, 256))
             for name, raw in labels.items() if "training" in name]
  for label in batch["label"]:
    assert any(np.array_equal(label, r) or np.array_equal(label, r[:, ::-1]) for r in resized)
  eval_batches = segmentation._eval_batches(study, src, 1, 0)   # pylint: disable=protected-access
  pieces = [p for b in eval_batches for p in b["host_pieces"] if p is not None]
  assert [p["box"] for p in pieces] == [(0, 0, 256, 256)] * 3           # one whole view each
  assert [p["label"].shape for p in pieces] == [(40, 60), (48, 32), (30, 30)]   # scored there


def test_segment_stage_needs_label_maps_and_they_need_it():
  config = load_config("digits_seg.py", "smoke")
  experiment.validate(config)
  config.stages = "pretrain,finetune"
  with pytest.raises(ConfigError, match="holds segmentation, which has no stage 'finetune'"):
    experiment.validate(config)
  config = load_config("digits.py", "smoke")
  config.stages = "pretrain,segment"
  with pytest.raises(ConfigError, match="holds images, which has no stage 'segment'"):
    experiment.validate(config)


@pytest.mark.slow
def test_digits_seg_smoke_scores_equal_the_written_predictions(tmp_path):
  config = load_config("digits_seg.py", "smoke")
  # Sliding windows (32 px, overlapping) over each 64 px canvas: the MAE paper's ADE20K mode.
  config.segment.update(eval_mode="slide", eval_size=32, eval_stride=16, eval_scale=(64, 64))
  summary = experiment.run(config, str(tmp_path))
  seg = summary["segment"]
  assert 0 <= seg["miou"] <= 100 and 0 <= seg["pixel_acc"] <= 100
  assert "miou" in summary["baselines"]["segment_random_init"]
  # The predictions as written (one PNG per test canvas) give the same confusion matrix.
  _, truth = seg_sources.digits_seg_arrays()["test"]
  folder = tmp_path / "segment" / "predictions"
  assert len(os.listdir(folder)) == len(truth)
  matrix = np.zeros((11, 11))
  for i, label in enumerate(truth):
    pred = np.asarray(Image.open(folder / f"test_{i:05d}.png"))
    matrix += np.asarray(confusion.confusion_matrix(pred, label, 11))
  scores = confusion.scores(matrix)
  np.testing.assert_allclose(scores["miou"], seg["miou"], rtol=1e-9)
  np.testing.assert_allclose(scores["pixel_acc"], seg["pixel_acc"], rtol=1e-9)
  overlays = np.asarray(Image.open(tmp_path / "segment" / "overlays.png"))
  assert _tensorboard_image_shapes(tmp_path / "segment")["segment/overlays"] == overlays.shape
  assert json.loads((tmp_path / "summary.json").read_text())["segment"]["miou"] == seg["miou"]
  # mae-jax-predict on new files: a test canvas saved as PNG gives the stage's own prediction;
  # any size works.
  images, _ = seg_sources.digits_seg_arrays()["test"]
  new = tmp_path / "new" / "sub"
  new.mkdir(parents=True)
  Image.fromarray(images[0]).save(new / "canvas.png")
  Image.fromarray(np.asarray(Image.fromarray(images[1]).resize((70, 50)))).save(
      tmp_path / "new" / "wide.png")
  from mae_jax import predict  # pylint: disable=g-import-not-at-top
  out = predict.predict(str(tmp_path), str(tmp_path / "new"), str(tmp_path / "out"))
  assert out["images"] == 2
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "sub" / "canvas.png")),
                                np.asarray(Image.open(folder / "test_00000.png")))
  assert np.asarray(Image.open(tmp_path / "out" / "wide.png")).shape == (50, 70)
  with pytest.raises(UserError, match="has no config.json"):
    predict.predict(str(tmp_path / "new"), str(tmp_path / "new"), str(tmp_path / "out2"))


def _tensorboard_image_shapes(logdir) -> dict[str, tuple[int, ...]]:
  """{tag: (H, W, 3)} of the images in logdir's TensorBoard event files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shapes = {}
  for name in os.listdir(logdir):
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(str(logdir / name)):
        for value in event.summary.value:
          if value.HasField("image"):
            shapes[value.tag] = (value.image.height, value.image.width, value.image.colorspace)
  return shapes


def test_pets_trimaps_are_pet_background_and_ignored_border(tmp_path):
  trimap = np.array([[1, 2, 3], [2, 1, 7]], np.uint8)
  np.testing.assert_array_equal(seg_sources.trimap_classes(trimap), [[1, 0, 255], [0, 1, 255]])
  from tests.helpers import mock_tfds  # pylint: disable=g-import-not-at-top
  with mock_tfds("oxford_iiit_pet", str(tmp_path), 6, ("train", "test")):
    src = seg_sources.seg_source("oxford_iiit_pet_masks", data_dir=str(tmp_path))
    assert src.num_classes == 2 and src.split_sizes == {"train": 6, "test": 6}
    examples = list(src.load("test").as_numpy_iterator())
  assert len(examples) == 6 and len({ex["name"] for ex in examples}) == 6
  for ex in examples:
    # (Mock data draws the image and mask sizes apart; the real ones match.)
    assert ex["label"].ndim == 2 and ex["image"].shape[-1] == 3
    assert set(np.unique(ex["label"])) <= {0, 1, 255}
    back = src.to_file_labels(ex["label"])
    np.testing.assert_array_equal(seg_sources.trimap_classes(back), ex["label"])
