"""Label maps: the `segment` stage, ViT + pyramid + UPerNet trained on label maps, scored by
mIoU; the `segmentation` modality (its images also serve images.py's pretrain and visualize).

Serves config.data.dataset "digits_seg" (offline), "oxford_iiit_pet_masks" (TFDS),
"ade20k:/path" (ADEChallengeData2016) and "segfolder:/path" (data/seg_sources.py).

Starts from the pretrain export (or any converted encoder, config.segment.init_from; "random"
for the segment_random_init baseline). AdamW with layer-wise lr decay; per-pixel cross-entropy
ignoring IGNORE_LABEL, plus the auxiliary FCN head's at config.segment.aux_weight. Evaluation:
every eval image's logits brought back to its annotation's own resolution on the host, one
confusion matrix over the split (confusion.py). At the end every eval image's predicted label
map is written as a PNG in the annotation's encoding, under WORKDIR/segment/predictions/, with a
few colour overlays in overlays.png.
"""

import dataclasses
import functools
import os
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from mae_jax import config_lib, confusion, losses, pixels, registry, visualize
from mae_jax.data import seg_datasets
from mae_jax.errors import ConfigError
from mae_jax.models import Segmenter, decode_variant, from_variant
from mae_jax.models.segmenter import HEADS, NECKS
from mae_jax.parallel import DATA_AXIS
from mae_jax.tasks import images
from mae_jax.tasks.base import (Batch, Evaluation, Task, TrainData, encoder_init, finetune_tx,
                                per_shard, steps_per_epoch)

PREDICTIONS, OVERLAYS_PNG = "predictions", "overlays.png"


@functools.lru_cache(maxsize=8)
def seg_source(dataset: str, num_classes: int, data_dir: str = "") -> Any:
  from mae_jax.data import seg_sources  # pylint: disable=g-import-not-at-top  (TensorFlow)
  return seg_sources.seg_source(dataset, num_classes, data_dir or None)


def seg_inputs(config: ml_collections.ConfigDict) -> Callable[[Batch], jax.Array]:
  """batch -> the model's normalised float32 (N, H, W, 3) input (segmentation batches are HWC)."""
  mean, std = tuple(config.data.mean), tuple(config.data.std)
  return lambda batch: pixels.normalize(batch["image"], mean, std, "HWC")


def segment_model(config: ml_collections.ConfigDict, num_classes: int) -> Segmenter:
  s = config.segment
  return from_variant(Segmenter, config.model.variant, num_classes=num_classes,
                      feature_blocks=tuple(s.feature_blocks), rescales=tuple(s.rescales),
                      neck=s.neck, head=s.head,
                      neck_channels=s.neck_channels, channels=s.channels, dropout=s.dropout,
                      aux_channels=s.aux_channels if s.aux_weight > 0 else 0,
                      drop_path=0.0 if s.probe else s.drop_path, bn_axis_name=DATA_AXIS,
                      dtype=jnp.dtype(config.model.dtype), attention=config.model.attention)


def segment_task(config: ml_collections.ConfigDict, workdir: str, source: Any = None,
                 stage: str = "segment") -> Task:
  """The segment stage's Task on `source` (a SegSource: images and label maps); without one,
  its model, loss and optimizer only."""
  s, d = config.segment, config.data
  with_data = source is not None
  model = segment_model(config, source.num_classes if with_data else max(d.num_classes, 2))
  inputs = seg_inputs(config)

  def loss_fn(params, model_state, batch, rng, example_ids):
    rngs = {"dropout": jax.random.fold_in(rng, example_ids[0])}
    (logits, aux), new_state = model.apply({"params": params, **model_state}, inputs(batch),
                                           train=True, rngs=rngs, mutable=list(model_state))
    labels = batch["label"].astype(jnp.int32)
    main = losses.segmentation_loss(logits, labels)
    loss = main + (s.aux_weight * losses.segmentation_loss(aux, labels) if aux is not None
                   else 0.0)
    return loss, (dict(new_state), {"loss": loss, "decode_loss": main})

  task = Task(stage, model, loss_fn, finetune_tx(config, s, freeze_encoder=s.probe),
              input_shape=(s.crop_size, s.crop_size, 3),
              init_from=encoder_init(s.init_from, workdir))
  if not with_data:
    return task
  return dataclasses.replace(task, data=_train_data(config, source),
                             evaluation=_evaluation(config, model, source),
                             finish=lambda variables, stage_dir: _finish(
                                 config, model, variables, source, stage_dir))


def _finish(config: ml_collections.ConfigDict, model: Segmenter, variables: dict[str, Any],
            source: Any, stage_dir: str) -> dict[str, np.ndarray]:
  """The stage's predictions and overlays.png; the overlays also go to TensorBoard."""
  _, overlays = write_predictions(config, model, variables, source, stage_dir)
  return {} if overlays is None else {"overlays": overlays}


def _train_data(config: ml_collections.ConfigDict, source: Any) -> TrainData:
  from mae_jax.data import seg_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  s = config.segment

  def batches(seed: int, start_step: int, num_shards: int, shard_index: int) -> Iterator[Batch]:
    return seg_pipeline.train_batches(
        source, source.train_split, batch_size=per_shard(s.batch_size, num_shards),
        crop=s.crop_size,
        scale=tuple(s.scale), ratio_range=tuple(s.ratio_range), cat_max_ratio=s.cat_max_ratio,
        hflip=s.hflip, distort=s.photometric, seed=seed, start_step=start_step,
        num_shards=num_shards, shard_index=shard_index, keep_ratio=s.keep_ratio)

  return TrainData(steps_per_epoch(source.num_examples(source.train_split), s.batch_size), batches)


def _eval_batches(config: ml_collections.ConfigDict, source: Any, num_shards: int,
                  shard_index: int) -> Iterator[Batch]:
  from mae_jax.data import seg_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  s = config.segment
  return seg_pipeline.eval_batches(source, source.eval_split,
                                   batch_size=per_shard(config.data.eval_batch_size, num_shards),
                                   size=s.eval_size, mode=s.eval_mode, stride=s.eval_stride,
                                   scale=tuple(s.eval_scale), num_shards=num_shards,
                                   shard_index=shard_index, keep_ratio=s.keep_ratio)


def completed(stitcher: Any, logits: np.ndarray, batch: dict[str, Any]
              ) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
  """The images a batch of pieces completes: (first piece, class ids (H, W) uint8)."""
  for piece_logits, piece in zip(logits, batch["host_pieces"]):
    if piece is not None:
      done = stitcher.add(piece_logits, piece)
      if done is not None:
        yield done


def _evaluation(config: ml_collections.ConfigDict, model: Segmenter, source: Any) -> Evaluation:
  from mae_jax.data import seg_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  inputs = seg_inputs(config)
  k = source.num_classes
  # Pieces of one image may span batches: the stitcher keeps them until the last, and starts
  # afresh with every pass over the split.
  stitcher = [seg_pipeline.Stitcher(config.segment.eval_size)]

  def logits_of(params, model_state, batch):
    logits, _ = model.apply({"params": params, **model_state}, inputs(batch), train=False)
    return {"logits": logits}

  def batches(num_shards: int, shard_index: int) -> Iterator[Batch]:
    stitcher[0] = seg_pipeline.Stitcher(config.segment.eval_size)
    return _eval_batches(config, source, num_shards, shard_index)

  def host(out: dict[str, np.ndarray], batch: dict[str, Any]) -> dict[str, np.ndarray]:
    matrix = np.zeros((k, k))
    for first, pred in completed(stitcher[0], out["logits"], batch):
      matrix += confusion.confusion_matrix(pred, first["label"], k)
    return {"confusion": matrix}

  def metrics(total: dict[str, Any]) -> dict[str, Any]:
    return confusion.scores(total["confusion"])

  def result(m: dict[str, Any]) -> dict[str, Any]:
    return {key: m[key] for key in ("miou", "pixel_acc", "mean_acc", "per_class_iou")}

  return Evaluation(logits_of, batches, metrics, result, host=host)


def write_predictions(config: ml_collections.ConfigDict, model: Segmenter,
                      variables: dict[str, Any], source: Any, stage_dir: str,
                      out_dir: str = "", encode: Callable[[np.ndarray], np.ndarray] | None = None
                      ) -> tuple[str, np.ndarray | None]:
  """Every eval image's predicted label map (this process's share of them) as
  <out_dir>/<annotation name>.png (default stage_dir/predictions), in the annotation files'
  encoding (`encode`, default the source's); and, from the first process,
  stage_dir/overlays.png: image | truth | prediction for the first few.
  -> (the folder, the overlay grid as uint8 (H, W, 3), or None on other processes)."""
  from mae_jax.data import seg_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  out_dir = out_dir or os.path.join(stage_dir, PREDICTIONS)
  encode = encode or source.to_file_labels
  epath.Path(out_dir).mkdir(parents=True, exist_ok=True)
  inputs = seg_inputs(config)
  apply = jax.jit(lambda v, images: model.apply(v, inputs({"image": images}), train=False)[0])
  size = config.segment.eval_size
  stitcher = seg_pipeline.Stitcher(size)
  rows = []
  for batch in _eval_batches(config, source, jax.process_count(), jax.process_index()):
    for first, pred in completed(stitcher, np.asarray(apply(variables, batch["image"])), batch):
      visualize.save_png(os.path.join(out_dir, f"{first['name']}.png"), encode(pred))
      if len(rows) < config.segment.overlay_images:
        rows.append(_overlay_row(first["image"], first["label"], pred, size))
  grid = None
  if rows and jax.process_index() == 0:
    grid = visualize.panel_grid(np.stack(rows), scale=visualize.upscale_for(size, 128))
    visualize.save_png(os.path.join(stage_dir, OVERLAYS_PNG), grid)
  return out_dir, grid


def _overlay_row(image: np.ndarray, label: np.ndarray, pred: np.ndarray, size: int
                 ) -> np.ndarray:
  """(3, size, size, 3) panels in [0, 1]: the image fitted to size x size, then truth and
  prediction over it."""
  from mae_jax.data import seg_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  hw = tuple(int(v) for v in seg_pipeline.fit_size(image.shape[:2], size))
  colours = visualize.palette(int(max(label[label != losses.IGNORE_LABEL].max(initial=0),
                            pred.max(initial=0))) + 1)
  picture = np.zeros((size, size, 3), np.float32)
  picture[:hw[0], :hw[1]] = seg_pipeline.resize_bilinear_image(image, hw) / 255.0

  def over(ids: np.ndarray) -> np.ndarray:
    canvas = np.full((size, size), losses.IGNORE_LABEL, np.uint8)
    canvas[:hw[0], :hw[1]] = seg_pipeline.resize_nearest(ids, hw)
    return 0.4 * picture + 0.6 * colours[canvas]

  return np.stack([picture, over(label), over(pred)])


# ---- the modality -------------------------------------------------------------------------------

def segment_section() -> ml_collections.ConfigDict:
  """mmsegmentation's ViT-B + UPerNet on ADE20K (upernet_mae-base, the MAE paper's protocol):
  batch 16, AdamW lr 1e-4 (base_lr 1.6e-3 at batch 256), layer decay 0.65, drop path 0.1,
  160k iterations, linear warmup 1500 iterations then poly decay (power 1), 512 crops."""
  return config_lib.loop_section(
      batch_size=16, num_epochs=0, num_steps=160000, base_lr=1.6e-3,
      warmup_epochs=1500 / 1263, lr_schedule="poly", b1=0.9, b2=0.999,
      weight_decay=0.05, layer_decay=0.65, drop_path=0.1, grad_clip_norm=0.0,
      probe=False,                    # True: frozen encoder, the neck and heads alone train
      feature_blocks=(3, 6, 9, 12),   # the study's; mmsegmentation's: 4, 6, 8, 12
      # The pyramid's levels (of 4, 2, 1, 0.5 times the patch grid), finest first: logits at
      # 1/4 of the input with 16-pixel patches; (2, 1, 0.5) gives 1/4 with 8-pixel ones.
      rescales=(4, 2, 1, 0.5),
      neck="feature2pyramid",         # or "simple" (ViTDet, from the last block)
      # "upernet" (neck + UPerNet + auxiliary FCN) or "linear": BatchNorm and a 1x1 classifier
      # on the feature_blocks' patch tokens, concatenated (DINOv2's linear segmentation probe;
      # with probe=True it scores the encoder's features, not what a head can learn).
      head="upernet",
      neck_channels=256, channels=512, dropout=0.1,
      aux_channels=256, aux_weight=0.4,   # FCN on the x1 level; 0 = none
      crop_size=512, scale=(2048, 512), ratio_range=(0.5, 2.0), cat_max_ratio=0.75,
      hflip=True, photometric=True,
      # True: resizes keep the aspect ratio (scale is (long, short)); False: images resized to
      # scale as (width, height) for training, to eval_size x eval_size (or eval_scale) for
      # evaluation, as mmseg's Resize(keep_ratio=False) (the TinyImageNet study's 256 x 256).
      keep_ratio=True,
      # Evaluation: "whole" (each image fitted, longer side, to eval_size) or "slide"
      # (resized as mmsegmentation's test Resize to eval_scale, then eval_size windows
      # eval_stride apart; the MAE paper's ADE20K protocol).
      eval_mode="whole", eval_size=512, eval_stride=341, eval_scale=(2048, 512),
      overlay_images=8,
      init_from="")   # encoder export; "" = this run's pretrain, "random"


def validate_segment(config: ml_collections.ConfigDict) -> None:
  """config.segment, when the segment stage (or its baseline) runs."""
  seg, v = config.segment, decode_variant(config.model.variant)
  for field, value, allowed in (("neck", seg.neck, NECKS), ("head", seg.head, HEADS)):
    if value not in allowed:
      raise ConfigError(f"config.segment.{field} must be "
                        f"{' or '.join(repr(a) for a in allowed)}, got {value!r}")
  in_range = bool(seg.feature_blocks) and all(1 <= b <= v.depth for b in seg.feature_blocks)
  if seg.head == "linear" and not in_range:
    raise ConfigError(f"config.segment.feature_blocks={tuple(seg.feature_blocks)}: the "
                      f"linear head reads these blocks' tokens; give block numbers in "
                      f"1..{v.depth}")
  rescales = tuple(seg.rescales)
  if (not rescales or any(r not in (4, 2, 1, 0.5) for r in rescales)
      or list(rescales) != sorted(set(rescales), reverse=True) or 1 not in rescales):
    raise ConfigError(f"config.segment.rescales={rescales}: distinct levels of 4, 2, 1, 0.5, "
                      "finest first, 1 among them (the auxiliary head's)")
  pyramid = seg.head == "upernet" and seg.neck == "feature2pyramid"
  if pyramid and (len(seg.feature_blocks) != len(rescales) or not in_range):
    raise ConfigError(f"config.segment.feature_blocks={tuple(seg.feature_blocks)}: "
                      f"{len(rescales)} block numbers in 1..{v.depth}, one per pyramid level "
                      f"(config.segment.rescales={rescales})")
  if seg.eval_mode not in ("whole", "slide") or (seg.eval_mode == "slide" and
                                                  not 0 < seg.eval_stride <= seg.eval_size):
    raise ConfigError(f"config.segment.eval_mode must be 'whole' or 'slide' (with 0 < "
                      f"eval_stride <= eval_size), got {seg.eval_mode!r} (stride "
                      f"{seg.eval_stride}, size {seg.eval_size})")
  if seg.crop_size % v.patch_size or seg.eval_size % v.patch_size:
    raise ConfigError(f"config.segment.crop_size={seg.crop_size} and eval_size={seg.eval_size} "
                      f"must be multiples of the patch size {v.patch_size}")


def segment_smoke(c: ml_collections.ConfigDict, image_size: int) -> None:
  images.image_smoke(c, image_size)
  c.segment.update(crop_size=image_size, eval_size=image_size, scale=(2 * image_size, image_size),
                   eval_stride=image_size // 2 or 1, eval_scale=(2 * image_size, image_size),
                   channels=16, neck_channels=16, aux_channels=8, overlay_images=2,
                   # The smoke encoder is 2 blocks deep: a block per pyramid level.
                   feature_blocks=tuple(min(i + 1, 2) for i in range(len(c.segment.rescales))))


registry.register(registry.Modality(
    name="segmentation",
    serves=lambda config: seg_datasets.is_segmentation(config.data.dataset),
    # The dataset's images, for pretrain and visualize; the segment stage reads its label maps.
    load_source=images.image_source,
    labelled_source=lambda c, images_source: seg_source(c.data.dataset, c.data.num_classes,
                                                        c.data.data_dir),
    stages=(images.PRETRAIN,
            registry.Stage("segment", title="segmentation", section=segment_section,
                           validate=validate_segment, score="miou",
                           task=lambda c, source, workdir: segment_task(c, workdir, source)),
            images.VISUALIZE),
    baselines=(registry.Baseline("segment_random_init", "segmentation, random init",
                                 twin="segment"),),
    model_size=lambda config: {"image_size": config.data.image_size},
    data_fields=images.data_fields,
    sections={"visualize": images.visualize_section},
    validate=images.validate_images,
    validate_data=images.validate_image_data,
    smoke=segment_smoke,
))
