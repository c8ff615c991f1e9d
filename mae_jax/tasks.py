"""What differs between the stages: model, loss, data, evaluation, optimizer, initialisation,
and what a stage leaves behind.

`train.train_stage` runs any Task; this file is the only place that knows pretrain, linprobe,
finetune and the visualize stage apart. A new task brings a Task: its model and loss, its
TrainData, an Evaluation (per-device sums -> metrics -> result.json entries), and `finish`
for what it writes at the end.
"""

import dataclasses
import os
from typing import Any, Callable, Iterable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mae_jax import checkpoint, config_lib, losses, optim, pixels, visualize, weights
from mae_jax.models import MAE, Classifier, decode_variant, from_variant
from mae_jax.masking import mask_noise, patchify
from mae_jax.parallel import DATA_AXIS, device_index

Params = Any
Batch = dict[str, jax.Array]
# (params, model_state, batch, rng, example_ids) -> (loss, (model_state, metrics)).
# example_ids are the examples' positions in the global batch: per-example randomness
# keyed on them is the same whatever the number of devices or micro-batches.
LossFn = Callable[[Params, dict, Batch, jax.Array, jax.Array], tuple[jax.Array, tuple[dict, dict]]]


@dataclasses.dataclass(frozen=True)
class TrainData:
  """A stage's training batches."""
  steps_per_epoch: int
  # (seed, start_step, num_shards, shard_index) -> this process's endless batches from global
  # step start_step on: its 1/num_shards of every global batch.
  batches: Callable[[int, int, int, int], Iterator[Batch]]


def shuffled_rows(n: int, batch_size: int, take: Callable[[np.ndarray], Batch]) -> TrainData:
  """TrainData over n in-memory examples (series windows, table rows): reshuffled every epoch
  from the seed, whole global batches only; take(indices) -> this shard's batch."""
  steps_per_epoch = max(n // batch_size, 1)

  def batches(seed: int, start_step: int, num_shards: int, shard_index: int
              ) -> Iterator[Batch]:
    per_shard = batch_size // num_shards
    step = start_step
    while True:
      epoch, j = divmod(step, steps_per_epoch)
      rows = np.random.default_rng([seed, epoch]).permutation(n)[j * batch_size:
                                                                 (j + 1) * batch_size]
      yield take(rows[shard_index * per_shard:(shard_index + 1) * per_shard])
      step += 1

  return TrainData(steps_per_epoch, batches)


def ordered_rows(n: int, batch_size: int, num_shards: int, shard_index: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Every one of n in-memory examples once, in order, in global batches of batch_size (the
  last padded): this shard's (indices, valid) per batch; padding repeats the last example."""
  per_shard = batch_size // num_shards
  for start in range(0, n, batch_size):
    index = np.arange(start, start + batch_size)[shard_index * per_shard:
                                                (shard_index + 1) * per_shard]
    yield index, index < n


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """How a stage is scored: per-device sums over one pass of the eval split, then metrics.

  With `host`, `sums` returns per-example outputs instead, and `host` turns each batch's (this
  process's rows, as numpy, with the batch's "host_" entries, which never reach a device) into
  sums: for what must run at each example's own size. Sums may be arrays (a confusion matrix);
  the loop adds them over batches, and over processes.
  """
  sums: Callable[[Params, dict, Batch], dict[str, jax.Array]]   # summed over devices too
  batches: Callable[[int, int], Iterable[Batch]]   # (num_shards, shard_index) -> one pass
  metrics: Callable[[dict[str, Any]], dict[str, Any]]   # split sums -> logged as eval/*
  result: Callable[[dict[str, Any]], dict[str, Any]]    # final metrics -> result.json
  host: Callable[[dict[str, np.ndarray], dict[str, Any]], dict[str, np.ndarray]] | None = None


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """An image of the model that the loop logs every `every_steps` steps and at the end."""
  every_steps: int
  tag: str
  # Loads what it draws from (once, in the process that writes) -> draw(host params) -> uint8.
  prepare: Callable[[], Callable[[Params], np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Task:
  """Everything `train.train_stage` needs to know about a stage; the loop knows no stage.

  Without `data` a task only builds its model, loss and optimizer (what the benchmarks time).
  """
  name: str                      # the config.<name> it trains with; the log's prefix
  model: nn.Module
  loss_fn: LossFn
  make_tx: Callable[[optax.Schedule, Params], optax.GradientTransformation]
  input_shape: tuple[int, ...]   # one example of the model's input, for `init`
  init_from: str = "random"      # export folder, or "random"
  data: TrainData | None = None
  evaluation: Evaluation | None = None
  # ({"params": ..., **model state} of the final step, stage dir) at the end; -> None or
  # {tag: uint8 (H, W, C) image} for TensorBoard at the final step.
  finish: Callable[[dict[str, Any], str], dict[str, np.ndarray] | None] | None = None
  snapshot: Snapshot | None = None

  def init(self, rng: jax.Array, sample: jax.Array) -> dict[str, Any]:
    """Random variables for inputs shaped like `sample`, then `init_from` applied."""
    rngs = {"params": rng, "masking": jax.random.fold_in(rng, 1),
            "dropout": jax.random.fold_in(rng, 2)}
    variables = jax.jit(lambda x: self.model.init(rngs, x))(sample)
    variables = dict(variables)
    if self.init_from != "random":
      params, _ = weights.restore_export(self.init_from)
      variables["params"] = weights.load_encoder(variables["params"], params, self.init_from)
    return variables


def model_description(config: ml_collections.ConfigDict) -> dict[str, Any]:
  v = decode_variant(config.model.variant)
  size = {"series": {"lookback": config.data.lookback}, "table": {},
          "volume": {"roi_size": list(config.data.roi_size)},
          "images": {"image_size": config.data.image_size}}[config_lib.modality(config)]
  return dict(variant=config.model.variant, width=v.width, depth=v.depth, num_heads=v.num_heads,
              patch_size=v.patch_size, mlp_ratio=v.mlp_ratio, **size)


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
  from mae_jax import data  # pylint: disable=g-import-not-at-top  (TensorFlow lives there)
  s, d = config[stage], config.data
  stream = data.streams(source, source.train_split, d.cache, d.cache_max_gb)

  def batches(seed: int, start_step: int, num_shards: int, shard_index: int
              ) -> Iterator[Batch]:
    return data.train_batches(
        source, source.train_split, batch_size=s.batch_size // num_shards,
        image_size=d.image_size, crop_scale=tuple(s.crop_scale), crop_ratio=tuple(s.crop_ratio),
        hflip=s.hflip, mean=tuple(d.mean), std=tuple(d.std), seed=seed, start_step=start_step,
        num_shards=num_shards, shard_index=shard_index, options=data.Augment.from_config(s),
        layout=d.batch_layout, stream=stream)

  return TrainData(data.num_train_steps_per_epoch(source, source.train_split, s.batch_size),
                   batches)


def eval_split_batches(config: ml_collections.ConfigDict, source: Any
                       ) -> Callable[[int, int], Iterator[Batch]]:
  """(num_shards, shard_index) -> one pass over `source`'s eval split, as config.data says."""

  def batches(num_shards: int, shard_index: int) -> Iterator[Batch]:
    from mae_jax import data  # pylint: disable=g-import-not-at-top  (TensorFlow)
    d = config.data
    return data.eval_batches(source, source.eval_split, batch_size=d.eval_batch_size // num_shards,
                             image_size=d.image_size, crop_ratio=d.eval_crop_ratio,
                             num_shards=num_shards, shard_index=shard_index,
                             layout=d.batch_layout)

  return batches


def eval_images(config: ml_collections.ConfigDict, source: Any, num_images: int) -> np.ndarray:
  """The first `num_images` images of the eval split as config.data preprocesses them:
  uint8 (N, H, W, 3)."""
  from mae_jax import data  # pylint: disable=g-import-not-at-top  (TensorFlow)
  d = config.data
  batches = data.eval_batches(source, source.eval_split, batch_size=num_images,
                              image_size=d.image_size, crop_ratio=d.eval_crop_ratio)
  batch = next(iter(batches))
  return np.asarray(batch["image"][batch["mask"] > 0])


def pretrain_model(config: ml_collections.ConfigDict) -> nn.Module:
  m = config.model
  return from_variant(MAE, m.variant, decoder_width=m.decoder_width,
                      decoder_depth=m.decoder_depth, decoder_heads=m.decoder_heads,
                      mask_ratio=m.mask_ratio, norm_pix_loss=m.norm_pix_loss,
                      dtype=jnp.dtype(m.dtype), attention=m.attention,
                      encoder_mask_tokens=m.encoder_mask_tokens, mask_value=m.mask_value,
                      patch_stride=m.patch_stride)


def mae_tx(s: ml_collections.ConfigDict
           ) -> Callable[[optax.Schedule, Params], optax.GradientTransformation]:
  """The optimizer of a stage that trains an MAE (config.<stage> `s`): AdamW, no layer decay."""
  return lambda schedule, params: optim.adamw(schedule, params, b1=s.b1, b2=s.b2,
                                              weight_decay=s.weight_decay)


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
              input_shape=image_shape(config))
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
                             evaluation=reconstruction_eval(config, model, source),
                             finish=lambda variables, stage_dir: export_encoder(
                                 config, variables, stage_dir),
                             snapshot=snapshot)


def export_encoder(config: ml_collections.ConfigDict, variables: dict[str, Any],
                   stage_dir: str) -> None:
  """stage_dir/export: the MAE's encoder, what the other stages start from
  (config.<stage>.init_from). An encoder mask token has no use there (they see every patch)."""
  encoder = {k: v for k, v in variables["params"]["encoder"].items() if k != "mask_token"}
  checkpoint.export_params(os.path.join(stage_dir, "export"), encoder, model_description(config))


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
  """Top-1 / top-5 accuracy and cross-entropy over `source`'s eval split."""
  inputs = model_inputs(config)

  def sums(params, model_state, batch):
    logits = model.apply({"params": params, **model_state}, inputs(batch), train=False)
    w = batch["mask"]
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    return {"count": w.sum(), "loss_sum": (xent * w).sum(),
            "correct1": (losses.topk_correct(logits, batch["label"], 1) * w).sum(),
            "correct5": (losses.topk_correct(logits, batch["label"], 5) * w).sum()}

  def metrics(total: dict[str, float]) -> dict[str, float]:
    n = max(total["count"], 1.0)
    return {"top1": 100 * total["correct1"] / n, "top5": 100 * total["correct5"] / n,
            "loss": total["loss_sum"] / n, "examples": total["count"]}

  def result(m: dict[str, float]) -> dict[str, Any]:
    return {"top1": m["top1"], "top5": m["top5"], "eval_loss": m["loss"]}

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
    depth = decode_variant(config.model.variant).depth
    make_tx = lambda schedule, params: optim.adamw(  # noqa: E731
        schedule, params, b1=s.b1, b2=s.b2, weight_decay=s.weight_decay,
        layer_decay=s.layer_decay, depth=depth, grad_clip_norm=s.grad_clip_norm)
  init_from = s.init_from or os.path.join(workdir, "pretrain", "export")
  task = Task(stage, model, loss_fn, make_tx, input_shape=image_shape(config),
              init_from=init_from)
  if source is None:
    return task
  return dataclasses.replace(task, data=image_train_data(config, stage, source),
                             evaluation=classification_eval(config, model, source))


def needs_labels(stage: str) -> bool:
  """Whether training stage `stage` learns from labels (so cannot run on unlabeled images)."""
  return stage != "pretrain"


def make_task(config: ml_collections.ConfigDict, stage: str, source: Any, workdir: str) -> Task:
  """The Task of training stage `stage` (one of config_lib.STAGES) on `source`."""
  if config_lib.modality(config) == "table":
    from mae_jax import impute_task  # pylint: disable=g-import-not-at-top
    return impute_task.impute_task(config, source)
  if config_lib.modality(config) == "volume":
    # Volumes (segment3d_task.py): the same MAE on 3-D patches of crops, and the UNETR.
    from mae_jax import segment3d_task  # pylint: disable=g-import-not-at-top
    if stage == "pretrain":
      return segment3d_task.pretrain_task(config, source)
    return segment3d_task.segment3d_task(config, workdir, source)
  if config_lib.modality(config) == "series":
    # Series (forecast_task.py): the same MAE on 1-D patches, and the forecasters.
    from mae_jax import forecast_task  # pylint: disable=g-import-not-at-top
    if stage == "pretrain":
      return forecast_task.pretrain_task(config, source)
    return forecast_task.forecast_task(config, workdir, source)
  if stage == "pretrain":
    return pretrain_task(config, source)
  if stage == "segment":
    # segment_task.py builds on this file's Task; its own module keeps the dense-prediction
    # pieces (label maps, confusion matrices, prediction PNGs) out of the image stages.
    from mae_jax import segment_task  # pylint: disable=g-import-not-at-top
    return segment_task.segment_task(config, workdir)
  return classifier_task(config, stage, source.num_classes, workdir, source)


def raw_pixels(config: ml_collections.ConfigDict, source: Any) -> dict[str, Any]:
  """The raw_pixels baseline: logistic regression on the eval-preprocessed pixels, what no
  representation learning gets."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  import threadpoolctl  # pylint: disable=g-import-not-at-top
  from mae_jax import data  # pylint: disable=g-import-not-at-top

  def arrays(split):
    xs, ys = [], []
    for b in data.eval_batches(source, split, batch_size=config.data.eval_batch_size,
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
  return {"top1": 100 * float(np.mean(clf.predict(x_test) == y_test)),
          "top5": 100 * float(np.mean(top5_hit)), "features": int(x_train.shape[1])}


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
  samplings = [s for s in config.visualize.samplings.split(",") if s]
  if samplings:
    grid, drawn = visualize.samplings_png(model, params, images, config.visualize,
                                          tuple(config.data.mean), tuple(config.data.std),
                                          samplings)
    result["samplings_png"] = visualize.save_png(os.path.join(out_dir, "samplings.png"), grid)
    result["samplings"] = drawn
  return result
