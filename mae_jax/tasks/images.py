"""Images: MAE pretraining, the linear probe and the fine-tune, the reconstruction grids
(visualize) and the raw-pixel baseline; the `images` modality.

Serves every config.data.dataset no other modality serves: "digits" (scikit-learn's, offline),
"imagefolder:/path" (root/<split>/<class>/<image>), "images:/path" (unlabeled, any depth:
pretrain and visualize only), "tfds:NAME" or "NAME" (data/sources.py).
"""

import dataclasses
import os
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mae_jax import (config_lib, losses, masking, monitor, optim, per_class, pixels, registry,
                     visualize, weights)
from mae_jax.errors import ConfigError
from mae_jax.masking import mask_noise, patchify
from mae_jax.models import Classifier, decode_variant, from_variant
from mae_jax.parallel import DATA_AXIS, device_index
from mae_jax.tasks.base import (PRETRAIN_CHECKPOINTS, Batch, Evaluation, Monitor, Params,
                                Snapshot, Task, TrainData, encoder_init, export_encoder,
                                finetune_tx, mae_tx, per_shard, pretrain_model)

UNLABELED_PREFIX = "images:"   # data/images.py: pretrain and visualize only
CACHE_MODES = ("auto", "memory", "stream")


def model_inputs(config: ml_collections.ConfigDict) -> Callable[[Batch], jax.Array]:
  """batch -> float32 (N, H, W, C) model input: its pixels normalised as config.data says, in
  the jitted step (one function, so that training and evaluation cannot differ)."""
  mean, std = tuple(config.data.mean), tuple(config.data.std)
  layout = config.data.batch_layout
  return lambda batch: pixels.normalize(batch["image"], mean, std, layout)


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """One image of the model's input: (H, W, C)."""
  return (config.data.image_size, config.data.image_size, 3)


def image_train_data(config: ml_collections.ConfigDict, stage: str, source: Any) -> TrainData:
  """Batches of `source`'s training split, augmented as config.<stage> says."""
  # pylint: disable-next=g-import-not-at-top  (TensorFlow: loaded by image stages only)
  from mae_jax.data import augment, pipeline, reading
  from mae_jax.distributed import echo  # pylint: disable=g-import-not-at-top
  s, d = config[stage], config.data
  stream = reading.streams(source, source.train_split, d.cache, d.cache_max_gb)
  skips = pipeline.skip_log(source, source.train_split, log=lambda line: echo(f"[{stage}] {line}"))

  def batches(seed: int, start_step: int, num_shards: int, shard_index: int
              ) -> Iterator[Batch]:
    return pipeline.train_batches(
        source, source.train_split, batch_size=per_shard(s.batch_size, num_shards),
        image_size=d.image_size, crop_scale=tuple(s.crop_scale), crop_ratio=tuple(s.crop_ratio),
        hflip=s.hflip, mean=tuple(d.mean), std=tuple(d.std), seed=seed, start_step=start_step,
        num_shards=num_shards, shard_index=shard_index, options=augment.Augment.from_config(s),
        layout=d.batch_layout, stream=stream, skips=skips)

  return TrainData(pipeline.num_train_steps_per_epoch(source, source.train_split, s.batch_size),
                   batches, skips)


def eval_split_batches(config: ml_collections.ConfigDict, source: Any
                       ) -> Callable[[int, int], Iterator[Batch]]:
  """(num_shards, shard_index) -> one pass over `source`'s eval split, as config.data says."""

  def batches(num_shards: int, shard_index: int) -> Iterator[Batch]:
    from mae_jax.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
    d = config.data
    return pipeline.eval_batches(source, source.eval_split,
                                 batch_size=per_shard(d.eval_batch_size, num_shards),
                                 image_size=d.image_size, crop_ratio=d.eval_crop_ratio,
                                 num_shards=num_shards, shard_index=shard_index,
                                 layout=d.batch_layout)

  return batches


def eval_images(config: ml_collections.ConfigDict, source: Any, num_images: int) -> np.ndarray:
  """The first `num_images` images of the eval split as config.data preprocesses them:
  uint8 (N, H, W, 3)."""
  from mae_jax.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  d = config.data
  batches = pipeline.eval_batches(source, source.eval_split, batch_size=num_images,
                                  image_size=d.image_size, crop_ratio=d.eval_crop_ratio)
  batch = next(iter(batches))
  return np.asarray(batch["image"][batch["mask"] > 0])


def pretrain_task(config: ml_collections.ConfigDict, source: Any = None) -> Task:
  """MAE pretraining; with a data `source`, its batches, snapshots and the encoder export."""
  model = pretrain_model(config)
  grid = (config.data.image_size // model.patch_size,) * 2
  sampling = config.model.mask_sampling
  inputs = model_inputs(config)

  def loss_fn(params, model_state, batch, rng, example_ids):
    # One key per example: its mask is the same whatever the devices and micro-batches.
    noise = jax.vmap(lambda i: mask_noise(sampling, jax.random.fold_in(rng, i), 1, grid,
                                          model.mask_ratio)[0])(example_ids)
    loss, _, _ = model.apply({"params": params}, inputs(batch), noise=noise, train=True)
    return loss, (model_state, {"loss": loss})

  task = Task("pretrain", model, loss_fn, mae_tx(config.pretrain),
              input_shape=image_shape(config), init_from=config.pretrain.init_from,
              init_mae=True)
  if source is None:
    return task

  vis = config.visualize
  mean, std = tuple(config.data.mean), tuple(config.data.std)

  def prepare_snapshot() -> Callable[[Params], np.ndarray]:
    images = eval_images(config, source, vis.num_images)
    return lambda params: visualize.grid_png(model, params, images, vis, mean, std, sampling)

  snapshot = (Snapshot(vis.every_steps, "reconstructions", prepare_snapshot)
              if vis.every_steps > 0 else None)
  return dataclasses.replace(task, data=image_train_data(config, "pretrain", source),
                             monitor=feature_monitor(config, model, source),
                             evaluation=reconstruction_eval(config, model, source),
                             finish=lambda variables, stage_dir: export_encoder(
                                 config, variables, stage_dir),
                             snapshot=snapshot)


def feature_monitor(config: ml_collections.ConfigDict, model: nn.Module, source: Any
                    ) -> Monitor | None:
  """The k-NN / few-shot / collapse monitor of MAE pretraining (monitor.py) on `source`'s
  training examples: a seeded bank and disjoint queries; None without labels or knn_bank 0."""
  s = config.pretrain
  if s.knn_bank <= 0 or source.num_classes <= 0:
    return None
  inputs = model_inputs(config)

  @jax.jit
  def pooled(params, batch):
    tokens, _, _ = model.apply({"params": params}, inputs(batch),
                               method=lambda m, x: m.encoder(x, mask_ratio=0.0))
    return tokens[:, 1:].mean(axis=1)          # (N, D): the mean of the patch tokens

  def prepare() -> Callable[[Params], dict[str, float]]:
    from mae_jax.data import labels, pipeline  # pylint: disable=g-import-not-at-top  (TF)
    n = source.num_examples(source.train_split)
    bank_n = min(s.knn_bank, n - 1)
    queries_n = max(1, min(s.knn_queries, n - bank_n))
    if source.random_access is None and source.encoded_loader is not None:
      # A store read in order only (TFDS tfrecord): its first examples, which costs their
      # reading alone (TFDS shuffles a split when it writes it), not a pass over the split.
      chosen = np.arange(bank_n + queries_n)
    else:
      chosen = labels.subset(n, bank_n + queries_n, config.seed)
    bank, queries = labels.holdout(chosen, queries_n / (bank_n + queries_n), config.seed)
    view = source.view(bank, queries)
    sets = []
    for split in (view.train_split, view.eval_split):
      batches = list(pipeline.eval_batches(view, split, batch_size=config.data.eval_batch_size,
                                           image_size=config.data.image_size,
                                           crop_ratio=config.data.eval_crop_ratio,
                                           layout=config.data.batch_layout))
      sets.append((batches, np.concatenate([b["label"][b["mask"] > 0] for b in batches])))
    measure = monitor.FeatureMonitor(k=s.knn_k, shots=s.fewshot_shots)

    def features(params, batches) -> np.ndarray:
      return np.concatenate([np.asarray(pooled(params, b))[b["mask"] > 0] for b in batches])

    def run(params: Params) -> dict[str, float]:
      (bank_b, bank_y), (query_b, query_y) = sets
      return measure(features(params, bank_b), bank_y, features(params, query_b), query_y)

    return run

  return Monitor(prepare)


def reconstruction_eval(config: ml_collections.ConfigDict, model: nn.Module, source: Any
                        ) -> Evaluation:
  """The MAE loss on `source`'s eval split (an "images:" folder's held-out slice).

  Masks are fixed (noise from key 0, per device and slot), so evaluations compare across steps.
  """
  inputs = model_inputs(config)

  def sums(params, model_state, batch):
    images = inputs(batch)
    grid = (images.shape[1] // model.patch_size, images.shape[2] // model.patch_size)
    noise = mask_noise(config.model.mask_sampling,
                       jax.random.fold_in(jax.random.key(0), device_index()), images.shape[0],
                       grid, model.mask_ratio)
    _, pred, mask = model.apply({"params": params}, images, noise=noise, train=False)
    per_example = jax.vmap(lambda t, p, m: losses.mae_loss(t[None], p[None], m[None],
                                                           model.norm_pix_loss))(
        patchify(images, model.patch_size), pred, mask)
    w = batch["mask"]
    return {"count": w.sum(), "loss_sum": (per_example * w).sum()}

  def metrics(total: dict[str, float]) -> dict[str, float]:
    return {"loss": total["loss_sum"] / max(total["count"], 1.0), "examples": total["count"]}

  return Evaluation(sums, eval_split_batches(config, source), metrics,
                    lambda m: {"eval_loss": m["loss"]})


def classification_eval(config: ml_collections.ConfigDict, model: nn.Module, source: Any
                        ) -> Evaluation:
  """Top-1 / top-5 accuracy, cross-entropy and per-class top-1 over `source`'s eval split."""
  inputs = model_inputs(config)
  num_classes = model.num_classes
  names = per_class.class_names(source, num_classes)

  def sums(params, model_state, batch):
    logits = model.apply({"params": params, **model_state}, inputs(batch), train=False)
    w, labels = batch["mask"], batch["label"]
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    hit1 = losses.topk_correct(logits, labels, 1)
    # Per class, the split's confusion matrix's row sums and diagonal: 2K numbers a batch
    # rather than K^2 (4 MB at 1000 classes), all that per-class top-1 needs.
    return {"count": w.sum(), "loss_sum": (xent * w).sum(), "correct1": (hit1 * w).sum(),
            "correct5": (losses.topk_correct(logits, labels, 5) * w).sum(),
            "class_count": jax.ops.segment_sum(w, labels, num_classes),
            "class_correct1": jax.ops.segment_sum(hit1 * w, labels, num_classes)}

  def metrics(total: dict[str, Any]) -> dict[str, Any]:
    n = max(total["count"], 1.0)
    return {"top1": 100 * total["correct1"] / n, "top5": 100 * total["correct5"] / n,
            "loss": total["loss_sum"] / n, "examples": total["count"],
            **per_class.entries(total["class_correct1"], total["class_count"], names)}

  def result(m: dict[str, Any]) -> dict[str, Any]:
    return {"top1": m["top1"], "top5": m["top5"], "eval_loss": m["loss"],
            per_class.TOP1: m[per_class.TOP1], per_class.EXAMPLES: m[per_class.EXAMPLES]}

  return Evaluation(sums, eval_split_batches(config, source), metrics, result)


def classifier_task(config: ml_collections.ConfigDict, stage: str, num_classes: int,
                    workdir: str, source: Any = None) -> Task:
  """linprobe or finetune; `config[stage].init_from` "" means this run's pretrain export.

  With a data `source`, its batches and the evaluation on its eval split.
  """
  s = config[stage]
  probe = stage == "linprobe"
  model = from_variant(
      Classifier, config.model.variant, num_classes=num_classes, global_pool=s.global_pool,
      drop_path=0.0 if probe else s.drop_path, probe=probe, head_init_std=s.head_init_std,
      bn_axis_name=DATA_AXIS, dtype=jnp.dtype(config.model.dtype),
      attention=config.model.attention)
  smoothing = 0.0 if probe else s.label_smoothing
  inputs = model_inputs(config)

  def loss_fn(params, model_state, batch, rng, example_ids):
    # Drop path draws per device and micro-batch; example_ids[0] tells them apart.
    rngs = {"dropout": jax.random.fold_in(rng, example_ids[0])}
    logits, new_state = model.apply({"params": params, **model_state}, inputs(batch), train=True,
                                    rngs=rngs, mutable=list(model_state))
    labels = batch["label"]   # int (N,), or soft (N, K) under mixup/cutmix
    loss = losses.classification_loss(logits, labels, smoothing)
    hard = labels if labels.ndim == 1 else jnp.argmax(labels, axis=-1)
    top1 = losses.topk_correct(logits, hard, 1).mean()
    return loss, (dict(new_state), {"loss": loss, "top1": 100 * top1})

  if probe:
    make_tx = lambda schedule, params: optim.freeze(  # noqa: E731
        optim.lars(schedule, weight_decay=s.weight_decay, momentum=s.momentum,
                   trust_coefficient=s.trust_coefficient), params,
        trainable=lambda names: names[0] != "encoder")
  else:
    make_tx = finetune_tx(config, s)
  task = Task(stage, model, loss_fn, make_tx, input_shape=image_shape(config),
              init_from=encoder_init(s.init_from, workdir))
  if source is None:
    return task
  return dataclasses.replace(task, data=image_train_data(config, stage, source),
                             evaluation=classification_eval(config, model, source))


def raw_pixels(config: ml_collections.ConfigDict, source: Any) -> dict[str, Any]:
  """The raw_pixels baseline: logistic regression on the eval-preprocessed pixels, what no
  representation learning gets."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  import threadpoolctl  # pylint: disable=g-import-not-at-top
  from mae_jax.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)

  def arrays(split):
    xs, ys = [], []
    for b in pipeline.eval_batches(source, split, batch_size=config.data.eval_batch_size,
                                   image_size=config.data.image_size,
                                   crop_ratio=config.data.eval_crop_ratio):
      keep = b["mask"] > 0
      images = pixels.normalize(b["image"][keep], config.data.mean, config.data.std)  # NumPy
      xs.append(images.reshape(keep.sum(), -1))
      ys.append(b["label"][keep])
    return np.concatenate(xs), np.concatenate(ys)

  x_train, y_train = arrays(source.train_split)
  x_test, y_test = arrays(source.eval_split)
  clf = LogisticRegression(C=config.raw_pixels.C, max_iter=config.raw_pixels.max_iter)
  # One BLAS thread: L-BFGS makes many small BLAS calls, whose spinning worker threads were
  # seen to make the fit 10x slower beside other busy processes.
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    clf.fit(x_train, y_train)
  proba = clf.predict_proba(x_test)
  top5 = np.argsort(-proba, axis=1)[:, :5]
  top5_hit = (clf.classes_[top5] == y_test[:, None]).any(axis=1)
  pred = clf.predict(x_test)
  return {"top1": 100 * float(np.mean(pred == y_test)),
          "top5": 100 * float(np.mean(top5_hit)), "features": int(x_train.shape[1]),
          **per_class.from_predictions(pred, y_test,
                                       per_class.class_names(source, source.num_classes))}


def visualize_norm_pix_loss(config: ml_collections.ConfigDict) -> bool | None:
  """config.visualize.norm_pix_loss ("", "true", "false") -> None (what the file says) / bool."""
  return {"": None, "true": True, "false": False}[config.visualize.norm_pix_loss.lower()]


def load_mae(config: ml_collections.ConfigDict, path: str) -> tuple[nn.Module, Params, str]:
  """The MAE at `path` (weights.load_mae) for the config's images; a train state is the config's
  MAE."""
  return weights.load_mae(path, pretrain_model(config), config.data.image_size,
                          visualize_norm_pix_loss(config))


def reconstructions(config: ml_collections.ConfigDict, checkpoint_path: str, out_dir: str,
                    source: Any) -> dict[str, Any]:
  """The visualize stage: the reconstruction grid of `checkpoint_path`'s MAE on the first
  config.visualize.num_images eval images, as out_dir/reconstructions.png."""
  model, params, loaded = load_mae(config, checkpoint_path)
  images = eval_images(config, source, config.visualize.num_images)
  grid = visualize.grid_png(model, params, images, config.visualize, tuple(config.data.mean),
                            tuple(config.data.std), config.model.mask_sampling)
  path = visualize.save_png(os.path.join(out_dir, "reconstructions.png"), grid)
  result = {"png": path, "checkpoint": loaded, "images": int(images.shape[0]),
            "columns": list(visualize.PANELS), "norm_pix_loss": bool(model.norm_pix_loss)}
  samplings = registry.names(config.visualize.samplings)
  if samplings:
    grid, drawn = visualize.samplings_png(model, params, images, config.visualize,
                                          tuple(config.data.mean), tuple(config.data.std),
                                          samplings)
    result["samplings_png"] = visualize.save_png(os.path.join(out_dir, "samplings.png"), grid)
    result["samplings"] = drawn
  return result


# ---- the modality: config sections, checks, stages, baselines -----------------------------------

def data_fields() -> dict[str, Any]:
  """config.data's fields for images (also label maps: segmentation.py)."""
  return dict(
      num_classes=0,             # segfolder: datasets: annotation values 1..num_classes
      data_dir="",               # TFDS data dir; "" = TFDS_DATA_DIR or ~/tensorflow_datasets
      # "images:" folders: the held-out share (at most holdout_max images) that the
      # reconstruction grids and the eval reconstruction loss use, not trained on.
      holdout=0.01,
      holdout_max=5000,
      # Training reads a split from host memory ("memory": the split is read once, encoded
      # images stay encoded) or from disk by index ("stream": memory stays a few batches,
      # whatever the split's size; needs a random-access dataset: image folders). "auto"
      # streams a split larger than cache_max_gb.
      cache="auto",
      cache_max_gb=4.0,
      # How a TFDS dataset not prepared yet is written: "" (TFDS's tfrecord: read into memory
      # to train) or "array_record" (random access: can stream).
      tfds_file_format="",
      image_size=224,
      mean=config_lib.IMAGENET_MEAN,
      std=config_lib.IMAGENET_STD,
      eval_crop_ratio=0.875,     # eval: resize shorter side to size / ratio, center crop
      # How train/eval batches order an image's axes: "WCH" as the resize leaves it, (W, C, H),
      # transposed to (H, W, C) in the jitted step (the host's CPU per image is the input
      # bottleneck; the accelerator's transpose is fused into the normalisation); "HWC" on the
      # host. Same pixels either way.
      batch_layout="WCH",
  )


def augment_section(**fields) -> ml_collections.ConfigDict:
  """A stage section of the tf.data image pipeline: the loop's fields, the crop and flip, the
  fine-tune augmentations (data/augment.py; off unless a stage turns them on), then `fields`."""
  return config_lib.loop_section(**{**dict(
      crop_scale=(0.08, 1.0),     # RandomResizedCrop area range (bicubic resize)
      crop_ratio=(3 / 4, 4 / 3),  # and aspect-ratio range
      hflip=True,
      rand_augment_layers=0,      # RandAugment ops per image; 0 = off
      rand_augment_magnitude=9.0,
      rand_augment_magnitude_std=0.5,
      color_jitter=0.0,           # only applied when RandAugment is off, as in timm
      random_erase_prob=0.0,
      mixup_alpha=0.0,            # Beta(a, a) per batch; 0 = off. Labels become soft.
      cutmix_alpha=0.0,
      mixup_prob=1.0,             # probability that a batch is mixed at all
      mixup_switch_prob=0.5,      # with both on: probability of cutmix instead of mixup
  ), **fields})


def pretrain_section() -> ml_collections.ConfigDict:
  # main_pretrain.py: blr 1.5e-4, wd 0.05, betas (0.9, 0.95), 40 warmup epochs, crop 0.2-1.
  return augment_section(batch_size=4096, num_epochs=800, base_lr=1.5e-4, warmup_epochs=40,
                         crop_scale=(0.2, 1.0), b1=0.9, b2=0.95,
                         # With each evaluation, on a labelled source: a k-NN classifier (knn_k
                         # neighbours, cosine) and a fewshot_shots-per-class ridge probe on the
                         # frozen pooled features of knn_bank training examples, scored on
                         # knn_queries others, plus feature std and effective rank (monitor.py).
                         # knn_bank 0: off.
                         knn_bank=1000, knn_queries=500, knn_k=20, fewshot_shots=10,
                         # Weights to continue pretraining from, encoder and decoder (a fresh
                         # decoder if they have none): a run's workdir or checkpoints, an
                         # export, an official .pth or an HF ViTMAE dir. Read at step 0 only.
                         init_from="random")


def linprobe_section() -> ml_collections.ConfigDict:
  # main_linprobe.py: LARS, blr 0.1, no wd, 10 warmup epochs, cls token, head std 0.01.
  # LARS moves a weight matrix by lr * trust_coefficient of its norm per step (biases by
  # lr * gradient): the two knobs set the head's and the bias's step sizes separately.
  return augment_section(batch_size=16384, num_epochs=90, base_lr=0.1, weight_decay=0.0,
                         warmup_epochs=10, momentum=0.9, trust_coefficient=0.001,
                         global_pool=False, head_init_std=0.01,
                         init_from="")   # encoder export; "" = this run's pretrain, "random"


def finetune_section() -> ml_collections.ConfigDict:
  # main_finetune.py (ViT-B): blr 5e-4, layer decay 0.65, drop path 0.1, smoothing 0.1;
  # RandAugment rand-m9-mstd0.5-inc1, color jitter 0.4 (unused by timm next to RandAugment),
  # random erasing 0.25, mixup 0.8 / cutmix 1.0 per batch.
  return augment_section(batch_size=1024, num_epochs=100, base_lr=5e-4, warmup_epochs=5,
                         b1=0.9, b2=0.999, layer_decay=0.65, drop_path=0.1, label_smoothing=0.1,
                         global_pool=True, head_init_std=2e-5, grad_clip_norm=0.0,
                         rand_augment_layers=2, color_jitter=0.4, random_erase_prob=0.25,
                         mixup_alpha=0.8, cutmix_alpha=1.0, init_from="")


def visualize_section() -> ml_collections.ConfigDict:
  """Reconstruction grids (mae_jax/visualize.py): the "visualize" stage, and TensorBoard images
  of the same eval images during pretraining."""
  return ml_collections.ConfigDict(dict(
      checkpoint="",             # the stage's MAE (see visualize.py); "" = this run's pretrain
      # .pth / HF files: whether the model predicts norm_pix targets. "" = what the file says
      # (HF config.json; a .pth says nothing: False, as the official mae_visualize weights).
      norm_pix_loss="",          # or "true" / "false"
      num_images=8,              # rows of the grid: the first eval-split images
      mask_ratio=0.0,            # 0 = the model's config.model.mask_ratio
      # samplings.png: the images masked by each of these samplings (those that can mask at the
      # ratio) and their reconstructions; "" = none.
      samplings="random,block,grid",
      seed=0,                    # masking noise, the same every time for comparable grids
      min_panel_size=128,        # small images are enlarged (pixel repetition) to this width
      every_steps=1000,          # pretraining: a TensorBoard grid every N steps and at the
                                 # end; 0 = off
  ))


def raw_pixels_section() -> ml_collections.ConfigDict:
  """The raw_pixels baseline: logistic regression on eval-preprocessed pixels (scikit-learn)."""
  return ml_collections.ConfigDict(dict(C=1.0, max_iter=1000))


def validate_visualize(config: ml_collections.ConfigDict) -> None:
  """The fields the visualize stage (and mae-jax-visualize) reads beyond the model and data."""
  if config.visualize.norm_pix_loss.lower() not in ("", "true", "false"):
    raise ConfigError(f"config.visualize.norm_pix_loss must be '', 'true' or 'false', got "
                      f"{config.visualize.norm_pix_loss!r}")
  unknown = [s for s in registry.names(config.visualize.samplings)
             if s not in masking.MASK_SAMPLINGS]
  if unknown:
    raise ConfigError(f"config.visualize.samplings: unknown {', '.join(unknown)}; a comma-"
                      f"separated subset of {','.join(masking.MASK_SAMPLINGS)}, or ''")


def validate_images(config: ml_collections.ConfigDict, runs: list[registry.Run],
                    workdir: str) -> None:
  """config.data and config.model for images (here and for label maps)."""
  del runs
  d, v = config.data, decode_variant(config.model.variant)
  stages = registry.names(config.stages)
  if "visualize" in stages and not config.visualize.checkpoint:
    from etils import epath  # pylint: disable=g-import-not-at-top
    if "pretrain" not in stages and not epath.Path(workdir, PRETRAIN_CHECKPOINTS).exists():
      raise ConfigError("config.stages has visualize but neither pretrain nor "
                        "config.visualize.checkpoint: there is no MAE to reconstruct with")
  if d.tfds_file_format not in ("", "tfrecord", "array_record"):
    raise ConfigError(f"config.data.tfds_file_format must be '', 'tfrecord' or 'array_record', "
                      f"got {d.tfds_file_format!r}")
  if d.cache not in CACHE_MODES:
    raise ConfigError(f"config.data.cache must be one of {CACHE_MODES}, got {d.cache!r}")
  if not 0 <= d.holdout < 1 or d.holdout_max < 0:
    raise ConfigError(f"config.data.holdout must be in [0, 1) and holdout_max >= 0, got "
                      f"{d.holdout} and {d.holdout_max}")
  if config.model.patch_stride:
    raise ConfigError(f"config.model.patch_stride={config.model.patch_stride}: overlapping "
                      f"patches are for series; images take 0")
  if d.image_size <= 0 or d.image_size % v.patch_size:
    raise ConfigError(f"config.data.image_size={d.image_size} is not a positive multiple "
                      f"of the patch size {v.patch_size} of config.model.variant="
                      f"{config.model.variant!r}")
  side = d.image_size // v.patch_size
  for ratio in {config.model.mask_ratio, config.visualize.mask_ratio or config.model.mask_ratio}:
    error = masking.sampling_error(config.model.mask_sampling, (side, side), ratio)
    if error:
      raise ConfigError(f"config.model.mask_sampling: {error}")
  validate_visualize(config)
  if d.batch_layout not in pixels.LAYOUTS:
    raise ConfigError(f"config.data.batch_layout must be one of {pixels.LAYOUTS}, got "
                      f"{d.batch_layout!r}")


def _validate_classification(config: ml_collections.ConfigDict, runs: list[registry.Run],
                             workdir: str) -> None:
  validate_images(config, runs, workdir)
  if not config.data.dataset.startswith(UNLABELED_PREFIX):
    return
  m = registry.get("images")
  labeled = [r.folder for r in runs if m.stage(r.stage).needs_labels]
  labeled += [b for b in registry.names(config.baselines)
              if m.baseline(b).compute is not None and m.baseline(b).needs_labels]
  if labeled:
    raise ConfigError(f"config.data.dataset={config.data.dataset!r} has no labels: it serves "
                      f"pretrain and visualize only, but config.stages/baselines ask for "
                      f"{', '.join(labeled)} (use an imagefolder: or TFDS dataset for those)")


def validate_image_data(config: ml_collections.ConfigDict, source: Any,
                        runs: list[registry.Run]) -> None:
  """Streaming has a random-access store to read, and every training stage gets one full
  batch per epoch."""
  if config.data.cache == "stream" and source.random_access is None:
    raise ConfigError(f"config.data.cache='stream' needs a dataset read by index: imagefolder:, "
                      f"images:, or TFDS prepared as array_record (config.data.tfds_file_format="
                      f"'array_record' in a fresh data_dir); {source.name} is not: set 'auto'")
  examples = source.split_sizes[source.train_split]
  for stage in sorted({r.stage for r in runs}):
    if config[stage].batch_size > examples:
      raise ConfigError(f"config.{stage}.batch_size={config[stage].batch_size} exceeds the "
                        f"{examples} training examples of {source.name}")


def image_source(config: ml_collections.ConfigDict) -> Any:
  """config.data's image dataset (data/sources.py)."""
  from mae_jax.data import sources  # pylint: disable=g-import-not-at-top  (TensorFlow)
  return sources.source_for(config.data)


def run_visualize(config: ml_collections.ConfigDict, source: Any, workdir: str
                  ) -> dict[str, Any]:
  """The visualize stage: the reconstruction grid of config.visualize.checkpoint (default: this
  run's pretrain stage)."""
  from mae_jax.distributed import echo, is_main  # pylint: disable=g-import-not-at-top
  ckpt = config.visualize.checkpoint or os.path.join(workdir, PRETRAIN_CHECKPOINTS)
  if not is_main():
    # Orbax reads a checkpoint with every process of a multi-process job (process 0 alone
    # would wait for the others forever): the others take part in the load, nothing more.
    load_mae(config, ckpt)
    return {}
  result = reconstructions(config, ckpt, os.path.join(workdir, "visualize"), source)
  echo(f"[visualize] {result['png']}")
  return result


def image_smoke(c: ml_collections.ConfigDict, image_size: int) -> None:
  c.data.image_size = image_size
  c.visualize.every_steps = 0     # tests/test_visualize.py covers it; every smoke run need not


def validate_pretrain(config: ml_collections.ConfigDict) -> None:
  """config.pretrain.init_from is "random" or weights that exist; whether they fit the model is
  known when they load (a .pth must be read whole), in one line too."""
  init_from = config.pretrain.init_from
  if init_from == "random":
    return
  if not init_from:
    raise ConfigError("config.pretrain.init_from is empty: 'random' pretrains from scratch, or "
                      "name the weights to continue from (docs/weights.md)")
  from etils import epath  # pylint: disable=g-import-not-at-top
  if not epath.Path(init_from).exists():
    raise ConfigError(f"config.pretrain.init_from={init_from!r} does not exist")


PRETRAIN = registry.Stage("pretrain", title="pretrain (MAE loss)",
                          task=lambda c, source, workdir: pretrain_task(c, source),
                          section=pretrain_section, needs_labels=False,
                          validate=validate_pretrain,
                          # Its init_from is a whole MAE in any format, not the encoder export
                          # experiment.validate checks: validate_pretrain checks it.
                          loads_encoder=lambda c: False)
VISUALIZE = registry.Stage("visualize", run=run_visualize, needs_labels=False)

registry.register(registry.Modality(
    name="images",
    serves=lambda config: False,
    fallback=True,
    load_source=image_source,
    stages=(PRETRAIN,
            registry.Stage("linprobe", title="linear probe", section=linprobe_section,
                           score="top1",
                           task=lambda c, source, workdir: classifier_task(
                               c, "linprobe", source.num_classes, workdir, source)),
            registry.Stage("finetune", title="fine-tune", section=finetune_section,
                           score="top1",
                           task=lambda c, source, workdir: classifier_task(
                               c, "finetune", source.num_classes, workdir, source)),
            VISUALIZE),
    baselines=(registry.Baseline("linprobe_random_init", "linear probe, random init",
                                 twin="linprobe"),
               registry.Baseline("finetune_random_init", "fine-tune, random init",
                                 twin="finetune"),
               registry.Baseline("raw_pixels", "logistic regression on raw pixels",
                                 compute=lambda c, source, workdir: raw_pixels(c, source))),
    model_size=lambda config: {"image_size": config.data.image_size},
    data_fields=data_fields,
    sections={"visualize": visualize_section, "raw_pixels": raw_pixels_section},
    validate=_validate_classification,
    validate_data=validate_image_data,
    smoke=image_smoke,
))
