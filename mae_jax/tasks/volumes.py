"""Volumes in the one loop: MAE pretraining on random 3-D crops, and the `segment3d` stage (a
UNETR on the pretrained encoder, models/unetr.py) scored by Dice; the `volumes` modality.

Serves config.data.dataset "btcv:/path" (dataset_0.json), "msd:/path" (a Decathlon task's
dataset.json), "mni152" (nilearn's template, offline) (data/volumes.py) and "colin27[:/path]"
(AAL lobes learnt on Colin27, scored on MNI152, offline: data/colin27.py).
Baselines: segment3d from random init (`segment3d_random_init`), and the field's plain 3-D U-Net
(`segment3d_unet`: MONAI's BasicUNet shape, models/unet3d.py) trained as segment3d is, the same
crops, loss, schedule and evaluation, its widths config.segment3d.unet_features.

Pretraining reads the scans of config.data.pretrain_splits (BTCV's unlabelled imagesTs/ too);
the segment3d stages read the labelled training and validation volumes alone (the modality's
labelled source). Pretraining cuts each crop into p x p x p patches with 3-D sin-cos
positions: the same MAE (masking, decoder, masked loss) as images and series. The segment3d
stage trains on crops centred half the time on a labelled voxel (MONAI's RandCropByPosNegLabeld)
with MONAI's DiceCE loss; it is evaluated on whole validation volumes through sliding windows
(sliding_window.py), the prediction brought back to the label file's own grid, where Dice is
taken per foreground class per volume, a class absent from a volume's label skipped (MONAI's
DiceMetric with include_background=False, ignore_empty=True), then averaged over volumes per
class and over classes. At the end each validation volume's label map is written as NIfTI
beside a PNG of a few slices; the pretrain stage leaves slice grids of its reconstructions.
"""

import dataclasses
import functools
import math
import os
from typing import Any, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mae_jax import config_lib, confusion, losses, registry, sliding_window, visualize
from mae_jax.data import colin27, volumes
from mae_jax.errors import ConfigError
from mae_jax.masking import example_noise, patch_grid, patchify, unpatchify
from mae_jax.models import MAE, UNETR, decode_variant, from_variant
from mae_jax.models.unet3d import BasicUNet3D, check_features
from mae_jax.tasks.base import (Batch, Evaluation, Task, TrainData, encoder_init, export_encoder,
                                finetune_tx, mae_tx, ordered_rows, per_shard, pretrain_model,
                                steps_per_epoch)

PREDICTIONS, SLICES_PNG, RECONSTRUCTIONS_PNG = "predictions", "slices.png", "reconstructions.png"


@functools.lru_cache(maxsize=4)
def _load(dataset: str, spacing: tuple[float, ...], intensity: str,
          intensity_range: tuple[float, ...], num_classes: int, val_fraction: float, seed: int,
          max_cases: int, pretrain_splits: tuple[str, ...]) -> Any:
  if colin27.serves(dataset):   # one brain per split: no val_fraction, no max_cases
    return colin27.load_colin27(dataset, spacing=spacing, intensity=intensity,
                                intensity_range=intensity_range, num_classes=num_classes,
                                pretrain_splits=pretrain_splits)
  return volumes.load_volumes(dataset, spacing=spacing, intensity=intensity,
                              intensity_range=intensity_range, num_classes=num_classes,
                              val_fraction=val_fraction, seed=seed, max_cases=max_cases,
                              pretrain_splits=pretrain_splits)


def volume_source(config: ml_collections.ConfigDict) -> Any:
  """config.data's volumes, preprocessed once per process (data/volumes.py): what pretraining
  reads; the segment3d stages read its `labelled()` part."""
  d = config.data
  return _load(d.dataset, tuple(d.spacing), d.intensity, tuple(d.intensity_range),
               d.num_classes, d.val_fraction, config.seed, d.max_cases,
               tuple(d.pretrain_splits))


def roi(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  return tuple(int(v) for v in config.data.roi_size)


# ---- data ---------------------------------------------------------------------------------------

def crop_data(config: ml_collections.ConfigDict, source: Any, batch_size: int,
              labelled: bool, augment: ml_collections.ConfigDict | None = None) -> TrainData:
  """Random roi crops of the training volumes (pretraining's: `source.pretrain_cases`): every
  epoch each volume in a fresh order gives config.data.crops_per_volume crops. Slot i of global
  step t draws from its own generator (seed, t, i), so a shard computes its rows only and the
  stream does not depend on the number of processes. Unlabelled crops (pretraining) are uniform;
  labelled ones balanced."""
  d = config.data
  cases = source.train if labelled else [dataclasses.replace(c, label=None)
                                         for c in source.pretrain_cases]
  per_volume = d.crops_per_volume
  spe = steps_per_epoch(len(cases) * per_volume, batch_size)
  size, (pos, neg) = roi(config), tuple(d.pos_neg)

  def batches(seed: int, start_step: int, num_shards: int, shard_index: int
              ) -> Iterator[Batch]:
    rows = per_shard(batch_size, num_shards)
    step = start_step
    while True:
      epoch, j = divmod(step, spe)
      order = np.random.default_rng([seed, epoch]).permutation(len(cases))
      images, labels = [], []
      for slot in range(shard_index * rows, (shard_index + 1) * rows):
        rng = np.random.default_rng([seed, step, slot])
        case = cases[order[((j * batch_size + slot) // per_volume) % len(cases)]]
        image, label = volumes.random_crops(case, size, 1, rng, pos, neg)
        if augment is not None:
          image, label = volumes.augment(
              image, label, rng, flip_prob=augment.flip_prob, rot90_prob=augment.rot90_prob,
              intensity_prob=augment.intensity_prob, intensity_factor=augment.intensity_factor)
        images.append(image[0])
        if label is not None:
          labels.append(label[0])
      batch = {"image": np.stack(images).astype(np.float32)}
      if labelled:
        batch["label"] = np.stack(labels).astype(np.int32)
      yield batch
      step += 1

  return TrainData(spe, batches)


def _window_batches(cases: list[Any], size: tuple[int, ...], overlap: float, blend: str,
                    num_classes: int, batch_size: int, num_shards: int, shard_index: int
                    ) -> Iterator[tuple[Batch, dict[int, Any]]]:
  """Every window of this shard's volumes (volume v goes to shard v % num_shards), in batches
  of batch_size // num_shards ("mask" 0 on padding), as many batches in every shard (a pass
  is collective). -> (batch with "host_windows": (volume, window) or None per row, this
  shard's blenders by volume)."""
  n = per_shard(batch_size, num_shards)
  blenders = {v: sliding_window.Blender(c.image.shape[:3], size, overlap, num_classes, mode=blend)
              for v, c in enumerate(cases)}
  counts = [sum(len(blenders[v].starts) for v in range(s, len(cases), num_shards))
            for s in range(num_shards)]
  mine = {v: b for v, b in blenders.items() if v % num_shards == shard_index}
  rows = [(v, i) for v, b in mine.items() for i in range(len(b.starts))]
  channels = cases[0].image.shape[-1] if cases else 1
  padded = {}
  for start in range(0, max(counts, default=0), n):
    chunk = rows[start:start + n]
    images = np.zeros((n, *size, channels), np.float32)
    for k, (v, i) in enumerate(chunk):
      if v not in padded:   # one volume at a time stays padded in memory
        padded = {v: mine[v].pad(cases[v].image)}
      images[k] = mine[v].window(padded[v], i)
    where = list(chunk) + [None] * (n - len(chunk))
    yield {"image": images, "mask": np.asarray([w is not None for w in where], np.float32),
           "host_windows": where}, mine


def volume_dice(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
  """(X, Y, Z) class ids -> (K,) Dice of each class in this volume, NaN where the class is
  absent from `truth` (MONAI's ignore_empty); entry 0 is the background's."""
  m = confusion.confusion_matrix(pred, truth, num_classes, ignore_label=-1)
  tp, actual, predicted = np.diag(m), m.sum(axis=1), m.sum(axis=0)
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(actual > 0, 2 * tp / (actual + predicted), np.nan)


def dice_sums(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
  dice = volume_dice(pred, truth, num_classes)
  return {"dice_sum": np.nan_to_num(dice), "dice_count": np.isfinite(dice).astype(np.float64),
          "volumes": np.float64(1.0)}


def dice_scores(total: dict[str, Any], class_names: tuple[str, ...]) -> dict[str, Any]:
  """Summed per-volume Dice -> {"dice": mean over foreground classes of the mean over volumes,
  "per_class_dice": {name: Dice or None}, "volumes"}."""
  count = np.asarray(total["dice_count"], np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    per_class = np.where(count > 0, np.asarray(total["dice_sum"]) / count, np.nan)[1:]
  return {"dice": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan"),
          "per_class_dice": {n: None if np.isnan(v) else float(v)
                             for n, v in zip(class_names[1:], per_class)},
          "volumes": float(total["volumes"])}


# ---- pretraining --------------------------------------------------------------------------------

def pretrain_task(config: ml_collections.ConfigDict, source: Any = None) -> Task:
  """The MAE on roi crops of the volumes config.data.pretrain_splits names (labels unused)."""
  model = pretrain_model(config)
  size = roi(config)
  tokens = math.prod(patch_grid(size, model.patch_size))
  channels = source.in_channels if source is not None else 1

  def loss_fn(params, model_state, batch, rng, example_ids):
    noise = example_noise(rng, example_ids, (tokens,))
    loss, _, _ = model.apply({"params": params}, batch["image"], noise=noise, train=True)
    return loss, (model_state, {"loss": loss})

  s = config.pretrain
  task = Task("pretrain", model, loss_fn, mae_tx(s), input_shape=(*size, channels))
  if source is None:
    return task
  crops = _fixed_crops(config, source)

  def finish(variables: dict[str, Any], stage_dir: str) -> dict[str, np.ndarray]:
    export_encoder(config, variables, stage_dir)
    grid = reconstruction_slices(model, variables["params"], crops[:config.visualize.num_images])
    if jax.process_index() == 0:
      visualize.save_png(os.path.join(stage_dir, RECONSTRUCTIONS_PNG), grid)
    return {"reconstructions": grid}

  return dataclasses.replace(task, data=crop_data(config, source, s.batch_size, labelled=False),
                             evaluation=_reconstruction_eval(config, model, crops, tokens),
                             finish=finish)


def _fixed_crops(config: ml_collections.ConfigDict, source: Any) -> np.ndarray:
  """One crop per validation volume (training volumes if none), the same every time:
  (V, *roi, C)."""
  cases = source.val or source.train
  return np.concatenate([volumes.random_crops(dataclasses.replace(c, label=None), roi(config), 1,
                                              np.random.default_rng([0, v]))[0]
                         for v, c in enumerate(cases)])


def _noise(count: int, tokens: int) -> jax.Array:
  """Fixed masks for evaluation and pictures: row v's noise from key (0, v)."""
  return example_noise(jax.random.key(0), jnp.arange(count), (tokens,))


def _reconstruction_eval(config: ml_collections.ConfigDict, model: MAE, crops: np.ndarray,
                         tokens: int) -> Evaluation:
  """The masked-patch loss on the fixed validation crops."""

  def sums(params, model_state, batch):
    noise = example_noise(jax.random.key(0), batch["index"], (tokens,))
    _, pred, mask = model.apply({"params": params}, batch["image"], noise=noise, train=False)
    per_example = jax.vmap(lambda t, p, m: losses.mae_loss(t[None], p[None], m[None],
                                                           model.norm_pix_loss))(
        patchify(batch["image"], model.patch_size), pred, mask)
    w = batch["mask"]
    return {"count": w.sum(), "loss_sum": (per_example * w).sum()}

  def batches(num_shards: int, shard_index: int) -> Iterator[Batch]:
    for index, valid in ordered_rows(len(crops), config.data.eval_batch_size, num_shards,
                                     shard_index):
      yield {"image": crops[np.where(valid, index, len(crops) - 1)],
             "mask": valid.astype(np.float32), "index": index.astype(np.int32)}

  def metrics(total: dict[str, float]) -> dict[str, float]:
    return {"loss": total["loss_sum"] / max(total["count"], 1.0)}

  return Evaluation(sums, batches, metrics, lambda m: {"eval_loss": m["loss"]})


def reconstruction_slices(model: MAE, params: Any, crops: np.ndarray) -> np.ndarray:
  """uint8 grid: per crop, its middle axial slice (last spatial axis): original | masked |
  reconstruction | reconstruction with the visible patches pasted (fixed masks)."""
  crops = jnp.asarray(crops)
  n, *size, channels = crops.shape
  grid = patch_grid(tuple(size), model.patch_size)
  _, pred, mask = jax.jit(lambda p, x, z: model.apply({"params": p}, x, noise=z, train=False))(
      params, crops, _noise(n, math.prod(grid)))
  patches = patchify(crops, model.patch_size)
  recon = visualize.unnormalize_pred(pred, patches, mask, model.norm_pix_loss)
  removed = mask[..., None]
  volume = lambda x: unpatchify(x, model.patch_size, grid, channels)[..., 0]  # noqa: E731
  original = np.asarray(crops[..., 0])
  masked = np.where(np.asarray(volume(jnp.broadcast_to(removed, patches.shape))) > 0, np.nan,
                    original)
  panels = np.stack([original, masked, np.asarray(volume(recon)),
                     np.asarray(volume(patches * (1 - removed) + recon * removed))], axis=1)
  panels = panels[..., size[2] // 2]                        # (N, 4, X, Y): the middle slice
  # One intensity scale for every panel (the originals' 1st to 99th percentile), so the
  # reconstructions are drawn as the originals are.
  lo, hi = np.percentile(original, [1, 99])
  scaled = np.clip((panels - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
  scaled = np.where(np.isnan(panels), 0.5, scaled)          # removed patches grey
  scaled = _axial_view(scaled, 2)
  return visualize.panel_grid(np.repeat(scaled[..., None], 3, axis=-1),
                              scale=visualize.upscale_for(max(size[:2]), 128))


def _axial_view(slices: np.ndarray, axis: int) -> np.ndarray:
  """RAS slices (..., X, Y, ...) with X at `axis` -> (..., Y, X, ...) images, anterior up and
  the patient's right on the right (the neurological convention)."""
  return np.flip(np.swapaxes(slices, axis, axis + 1), axis=axis)


# ---- segment3d ----------------------------------------------------------------------------------

def segment3d_model(config: ml_collections.ConfigDict, num_classes: int) -> UNETR | BasicUNet3D:
  """config.segment3d.arch's model: "unetr" on config.model's encoder, or "unet"."""
  s = config.segment3d
  if s.arch == "unet":
    return BasicUNet3D(num_classes, tuple(s.unet_features), dtype=jnp.dtype(config.model.dtype),
                       conv=s.conv)
  return from_variant(UNETR, config.model.variant, num_classes=num_classes,
                      feature_size=s.feature_size, feature_blocks=tuple(s.feature_blocks),
                      drop_path=0.0 if s.probe else s.drop_path,
                      dtype=jnp.dtype(config.model.dtype),
                      attention=config.model.attention, conv=s.conv)


def segment3d_task(config: ml_collections.ConfigDict, workdir: str, source: Any = None,
                   num_classes: int = 2, in_channels: int = 1) -> Task:
  """The segment3d stage's Task: UNETR on roi crops, DiceCE loss, AdamW (layer decay as
  config.segment3d.layer_decay); its encoder from config.segment3d.init_from ("" = this run's
  pretrain export). arch "unet": the U-Net, from random init, the rest the same. Without a
  source, its model, loss and optimizer only."""
  s = config.segment3d
  if source is not None:
    num_classes, in_channels = source.num_classes, source.in_channels
  model = segment3d_model(config, num_classes)

  def loss_fn(params, model_state, batch, rng, example_ids):
    rngs = {"dropout": jax.random.fold_in(rng, example_ids[0])}
    logits = model.apply({"params": params}, batch["image"], train=True, rngs=rngs)
    loss = losses.dice_ce_loss(logits, batch["label"], num_classes)
    return loss, (model_state, {"loss": loss})

  task = Task("segment3d", model, loss_fn, finetune_tx(config, s, freeze_encoder=s.probe),
              input_shape=(*roi(config), in_channels),
              init_from="random" if s.arch == "unet" else encoder_init(s.init_from, workdir))
  if source is None:
    return task
  return dataclasses.replace(
      task, data=crop_data(config, source, s.batch_size, labelled=True, augment=s),
      evaluation=_evaluation(config, model, source),
      finish=lambda variables, stage_dir: write_predictions(config, model, variables, source,
                                                            stage_dir))


def _evaluation(config: ml_collections.ConfigDict, model: nn.Module, source: Any) -> Evaluation:
  """Dice over the validation volumes: windows through the devices, each volume's blended
  logits -> labels at its file's grid -> per-class Dice, summed over volumes on the host."""
  s, k = config.segment3d, source.num_classes
  blenders: list[dict[int, Any]] = [{}]

  def logits_of(params, model_state, batch):
    return {"logits": model.apply({"params": params}, batch["image"], train=False)}

  def batches(num_shards: int, shard_index: int) -> Iterator[Batch]:
    for batch, mine in _window_batches(source.val, roi(config), s.overlap, s.blend, k,
                                       config.data.eval_batch_size, num_shards, shard_index):
      blenders[0] = mine
      yield batch

  def host(out: dict[str, np.ndarray], batch: dict[str, Any]) -> dict[str, np.ndarray]:
    total = {"dice_sum": np.zeros(k), "dice_count": np.zeros(k), "volumes": np.float64(0.0)}
    for logits, where in zip(out["logits"], batch["host_windows"]):
      if where is None:
        continue
      v, i = where
      blender = blenders[0][v]
      blender.add(i, logits)
      if blender.done():
        case = source.val[v]
        pred = volumes.to_source_grid(case, np.argmax(blender.result(), axis=-1))
        del blenders[0][v]   # its sums are large
        for key, value in dice_sums(pred, case.source_label, k).items():
          total[key] = total[key] + value
    return total

  return Evaluation(logits_of, batches, lambda total: dice_scores(total, source.class_names),
                    dict, host=host)


def predict_volumes(config: ml_collections.ConfigDict, model: nn.Module, variables: dict[str, Any],
                    source: Any) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
  """(case, label map on its preprocessed grid, uint8 label map at its file's grid) for this
  process's validation volumes."""
  s = config.segment3d
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  for batch, mine in _window_batches(source.val, roi(config), s.overlap, s.blend,
                                     source.num_classes, config.data.eval_batch_size,
                                     jax.process_count(), jax.process_index()):
    logits = np.asarray(apply(variables, batch["image"]))
    for row, where in zip(logits, batch["host_windows"]):
      if where is not None:
        v, i = where
        mine[v].add(i, row)
        if mine[v].done():
          case, pred = source.val[v], np.argmax(mine.pop(v).result(), axis=-1)
          yield case, pred, volumes.to_source_grid(case, pred)


def write_predictions(config: ml_collections.ConfigDict, model: nn.Module,
                      variables: dict[str, Any], source: Any, stage_dir: str
                      ) -> dict[str, np.ndarray]:
  """stage_dir/predictions/<image name>.nii.gz for each validation volume (the image file's
  affine and shape), and from the first process slices.png (image | truth | prediction, the
  middle axial slice of the first few volumes)."""
  out_dir = os.path.join(stage_dir, PREDICTIONS)
  rows = []
  for case, pred, in_file_grid in predict_volumes(config, model, variables, source):
    volumes.write_label_nifti(os.path.join(out_dir, f"{case.name}.nii.gz"), in_file_grid,
                              case.source_affine)
    if len(rows) < config.segment3d.slice_images:
      rows.append(_slice_row(case, pred, source.num_classes))
  if not rows or jax.process_index() != 0:
    return {}
  width = max(r.shape[2] for r in rows)
  height = max(r.shape[1] for r in rows)
  rows = [np.pad(r, ((0, 0), (0, height - r.shape[1]), (0, width - r.shape[2]), (0, 0)))
          for r in rows]
  grid = visualize.panel_grid(np.stack(rows), scale=visualize.upscale_for(max(height, width), 192))
  visualize.save_png(os.path.join(stage_dir, SLICES_PNG), grid)
  return {"slices": grid}


def _slice_row(case: Any, pred: np.ndarray, num_classes: int) -> np.ndarray:
  """(3, H, W, 3) in [0, 1]: the axial slice (preprocessed grid) with the most labelled voxels,
  the truth and the prediction over it."""
  image, truth = case.image[..., 0], case.label
  z = int(np.argmax((truth > 0).sum(axis=(0, 1)))) if truth.any() else truth.shape[2] // 2
  picture = image[:, :, z]
  lo, hi = np.percentile(picture, [1, 99])
  picture = np.clip((picture - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
  colours = visualize.palette(num_classes)
  colours[0] = 0.0

  def over(ids: np.ndarray) -> np.ndarray:
    shown = (ids > 0)[..., None]
    return np.where(shown, 0.4 * picture[..., None] + 0.6 * colours[ids], picture[..., None])

  panels = np.stack([np.repeat(picture[..., None], 3, -1), over(truth[:, :, z]),
                     over(pred[:, :, z])])
  return _axial_view(panels, 1)


def dice_from_files(predictions_dir: str, source: Any) -> dict[str, Any]:
  """The Dice of the NIfTI label maps in predictions_dir against the validation labels, read
  back from the files (what summary.json must equal)."""
  import nibabel as nib  # pylint: disable=g-import-not-at-top
  total = {"dice_sum": 0.0, "dice_count": 0.0, "volumes": 0.0}
  for case in source.val:
    pred = np.asarray(nib.load(os.path.join(predictions_dir, f"{case.name}.nii.gz")).dataobj)
    # The label file as stored; a volume made in memory (the mni152 halves) has none.
    truth = (np.asarray(nib.load(case.label_path).dataobj) if case.label_path
             else case.source_label)
    for key, value in dice_sums(pred.astype(np.int64), np.rint(truth).astype(np.int64),
                                source.num_classes).items():
      total[key] = total[key] + value
  return dice_scores(total, source.class_names)



# ---- the modality -------------------------------------------------------------------------------

DATASETS = (volumes.MNI152, colin27.COLIN27)
PREFIXES = (volumes.BTCV, volumes.MSD, colin27.COLIN27 + ":")
ARCHS = ("unetr", "unet")


def data_fields() -> dict[str, Any]:
  """config.data's fields for volumes: reoriented to RAS, resampled to `spacing` (mm),
  intensities "window"ed (intensity_range clipped, scaled to [0, 1]) or "zscore"d (per channel,
  nonzero voxels), cropped to the foreground; the model sees roi_size crops (crops_per_volume
  per volume and step, half of them centred on a labelled voxel: pos_neg) and whole volumes
  through sliding windows. num_classes 0 = the JSON's "labels"; msd: holds out val_fraction of
  the training list. pretrain_splits: the JSON's lists whose scans pretraining reads ("training",
  "validation": the labelled cases; any other, e.g. "test": its images, unlabelled, for
  pretraining alone; a list the JSON lacks is skipped with one line)."""
  return dict(num_classes=0, spacing=(1.5, 1.5, 2.0), intensity="window",
              intensity_range=(-175.0, 250.0), roi_size=(96, 96, 96), crops_per_volume=4,
              pos_neg=(1.0, 1.0), val_fraction=0.2,
              pretrain_splits=(volumes.TRAINING, "test"),
              max_cases=0)   # > 0: the first max_cases volumes of each split (smoke runs)


def pretrain_section() -> ml_collections.ConfigDict:
  return config_lib.loop_section(batch_size=4096, num_epochs=800, base_lr=1.5e-4,
                                 warmup_epochs=40, b1=0.9, b2=0.95)


def segment3d_section() -> ml_collections.ConfigDict:
  """MONAI's UNETR on BTCV (AdamW lr 1e-4 at 4 crops per step -> base_lr 6.4e-3, weight decay
  1e-5, 25k iterations, DiceCE loss), SelfMedMAE's augmentation (flips and rot90 at 0.1,
  intensity scale/shift by 0.1); sliding-window evaluation of whole volumes (roi windows,
  overlap 0.5, Gaussian blending)."""
  return config_lib.loop_section(
      batch_size=4, num_epochs=0, num_steps=25000, base_lr=6.4e-3, warmup_epochs=0, b1=0.9,
      b2=0.999, weight_decay=1e-5, layer_decay=1.0, grad_clip_norm=0.0, drop_path=0.0,
      probe=False,    # True: frozen encoder, the UNETR's decoder alone trains
      feature_size=16,
      # The ViT blocks the skips come from, the last the bottleneck (the UNETR paper's z3, z6,
      # z9, z12; MONAI's code taps 4, 7, 10, 12).
      feature_blocks=(3, 6, 9, 12),
      flip_prob=0.1, rot90_prob=0.1, intensity_prob=0.1, intensity_factor=0.1,
      overlap=0.5, blend="gaussian", eval_every_epochs=100, slice_images=4,
      # How 3^3 convolutions run (models/unetr.py conv_same), the same numbers: "auto" (2-D
      # slices on CPUs, XLA's 3-D convolution elsewhere).
      conv="auto",
      # "unetr" (on the MAE's encoder) or "unet" (the baseline segment3d_unet sets it: MONAI's
      # BasicUNet, random init, unet_features its widths: 5 levels, then the last upsampling's).
      arch="unetr", unet_features=(32, 32, 64, 128, 256, 32),
      init_from="")   # encoder export; "" = this run's pretrain, "random"


def visualize_section() -> ml_collections.ConfigDict:
  # Rows of pretrain/reconstructions.png: one crop of each of the first validation volumes.
  return ml_collections.ConfigDict(dict(num_images=8))


def validate_volumes(config: ml_collections.ConfigDict, runs: list[registry.Run],
                     workdir: str) -> None:
  """Volumes: roi crops cut into 3-D patches, random masking; the U-Net runs' widths."""
  del workdir
  d, v = config.data, decode_variant(config.model.variant)
  size = tuple(d.roi_size)
  if len(size) != 3 or any(n <= 0 or n % v.patch_size for n in size):
    raise ConfigError(f"config.data.roi_size={size}: three positive multiples of the patch size "
                      f"{v.patch_size} of config.model.variant={config.model.variant!r}")
  if config.model.mask_sampling != "random" or config.model.patch_stride:
    raise ConfigError("config.model: volumes take mask_sampling 'random' and patch_stride 0")
  if d.intensity not in ("window", "zscore"):
    raise ConfigError(f"config.data.intensity must be 'window' or 'zscore', got {d.intensity!r}")
  if len(tuple(d.spacing)) != 3 or min(d.spacing) <= 0:
    raise ConfigError(f"config.data.spacing={tuple(d.spacing)}: three positive sizes in mm")
  splits = d.pretrain_splits
  if (isinstance(splits, str) or not splits
      or not all(isinstance(k, str) and k for k in splits)):
    raise ConfigError(f"config.data.pretrain_splits={splits!r}: a tuple of the dataset JSON's "
                      "list names, e.g. ('training', 'test')")
  if d.crops_per_volume < 1 or min(d.pos_neg) < 0 or sum(d.pos_neg) <= 0:
    raise ConfigError(f"config.data.crops_per_volume={d.crops_per_volume} must be >= 1 and "
                      f"config.data.pos_neg={tuple(d.pos_neg)} non-negative, not both 0")
  s = config.segment3d
  if not 0.0 <= s.overlap < 1.0 or s.blend not in ("gaussian", "constant"):
    raise ConfigError(f"config.segment3d.overlap={s.overlap} must be in [0, 1) and blend "
                      f"'gaussian' or 'constant', got {s.blend!r}")
  if s.conv not in ("auto", "xla", "slices"):
    raise ConfigError(f"config.segment3d.conv must be 'auto', 'xla' or 'slices', got {s.conv!r}")
  for r in runs:   # the U-Net baseline sets arch through its run's overrides
    if r.stage == "segment3d" and r.overrides.get("segment3d.arch", s.arch) == "unet":
      _validate_unet(s, size, r)


def _validate_unet(s: ml_collections.ConfigDict, size: tuple[int, ...], run: registry.Run
                   ) -> None:
  """The U-Net's widths, crops its poolings divide, and no encoder to load."""
  features = tuple(s.unet_features)
  try:
    check_features(features)
  except ValueError as e:
    raise ConfigError(f"config.segment3d.unet_features: {e}") from None
  step = 2 ** (len(features) - 2)
  if any(n % step for n in size):
    raise ConfigError(f"config.data.roi_size={size}: the U-Net's {len(features) - 2} poolings "
                      f"(config.segment3d.unet_features={features}) take multiples of {step}")
  if run.overrides.get("segment3d.init_from", s.init_from) != "random":
    raise ConfigError("config.segment3d.arch='unet' has no encoder to load: set "
                      "config.segment3d.init_from='random' (the segment3d_unet baseline does)")


def validate_segment3d(config: ml_collections.ConfigDict) -> None:
  """The UNETR's skips: log2(patch) blocks of the encoder, the last one its final block."""
  s, v = config.segment3d, decode_variant(config.model.variant)
  if s.arch not in ARCHS:
    raise ConfigError(f"config.segment3d.arch must be one of {ARCHS}, got {s.arch!r}")
  levels = math.log2(v.patch_size)
  blocks = tuple(s.feature_blocks)
  if levels != int(levels) or len(blocks) != int(levels) or blocks[-1] != v.depth or any(
      not 1 <= b <= v.depth for b in blocks):
    raise ConfigError(
        f"config.segment3d.feature_blocks={blocks}: a UNETR on patches of {v.patch_size} "
        f"(a power of 2) takes log2(patch) = {levels:g} blocks of the {v.depth}-block encoder, "
        f"the skips then the last block ({v.depth}), e.g. (3, 6, 9, 12) for 16")


def validate_volume_data(config: ml_collections.ConfigDict, source: Any,
                         runs: list[registry.Run]) -> None:
  if not source.val and any(r.stage == "segment3d" for r in runs):
    raise ConfigError(f"{source.name} has no validation volumes to score segment3d on")
  if not source.pretrain_cases and any(r.stage == "pretrain" for r in runs):
    raise ConfigError(f"config.data.pretrain_splits={tuple(config.data.pretrain_splits)}: "
                      f"{source.name} lists no scans in them to pretrain on")
  if config.data.eval_batch_size % jax.process_count():
    raise ConfigError(f"config.data.eval_batch_size={config.data.eval_batch_size} is not a "
                      f"multiple of the {jax.process_count()} processes")


registry.register(registry.Modality(
    name="volumes",
    serves=lambda config: (config.data.dataset in DATASETS
                           or config.data.dataset.startswith(PREFIXES)),
    load_source=volume_source,
    # The segment3d stages and their baselines never see the pretraining-only scans.
    labelled_source=lambda config, source: source.labelled(),
    stages=(registry.Stage("pretrain", title="pretrain (MAE loss)", section=pretrain_section,
                           needs_labels=False,
                           task=lambda c, source, workdir: pretrain_task(c, source)),
            registry.Stage("segment3d", title="3-D segmentation (UNETR)",
                           section=segment3d_section, validate=validate_segment3d,
                           score="dice",
                           loads_encoder=lambda c: c.segment3d.arch != "unet",
                           task=lambda c, source, workdir: segment3d_task(c, workdir, source))),
    baselines=(registry.Baseline("segment3d_random_init", "3-D segmentation, random init",
                                 twin="segment3d"),
               # The field's baseline: segment3d's crops, loss, schedule, seeds and evaluation.
               registry.Baseline("segment3d_unet", "3-D segmentation, U-Net (BasicUNet)",
                                 twin="segment3d", overrides={"segment3d.arch": "unet"})),
    model_size=lambda config: {"roi_size": list(config.data.roi_size)},
    data_fields=data_fields,
    sections={"visualize": visualize_section},
    validate=validate_volumes,
    validate_data=validate_volume_data,
))
