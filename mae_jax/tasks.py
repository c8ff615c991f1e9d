"""What differs between the stages: model, loss, evaluation, optimizer, initialisation.

`train.train_stage` runs any Task; this file is the only place that knows
pretrain, linprobe and finetune apart.
"""

import dataclasses
import os
from typing import Any, Callable

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import optax

from mae_jax import checkpoint, losses, optim, pixels, visualize
from mae_jax.errors import ConfigError
from mae_jax.models import classifier_from_variant, decode_variant, mae_from_variant
from mae_jax.parallel import DATA_AXIS

Params = Any
Batch = dict[str, jax.Array]
# (params, model_state, batch, rng, example_ids) -> (loss, (model_state, metrics)).
# example_ids are the examples' positions in the global batch: per-example randomness
# keyed on them is the same whatever the number of devices or micro-batches.
LossFn = Callable[[Params, dict, Batch, jax.Array, jax.Array], tuple[jax.Array, tuple[dict, dict]]]


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """An image of the model that the loop logs every `every_steps` steps and at the end."""
  every_steps: int
  num_images: int                                        # eval images it is drawn from
  draw: Callable[[Params, Any], Any]                     # (host params, images) -> uint8 HWC


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  model: nn.Module
  loss_fn: LossFn
  make_tx: Callable[[optax.Schedule, Params], optax.GradientTransformation]
  init_from: str                 # export folder, or "random"
  eval_fn: Callable[[Params, dict, Batch], dict[str, jax.Array]] | None = None
  description: dict[str, Any] = dataclasses.field(default_factory=dict)  # for the export JSON
  snapshot: Snapshot | None = None

  def init(self, rng: jax.Array, images: jax.Array) -> dict[str, Any]:
    """Random variables for `images` of one batch shape, then `init_from` applied."""
    rngs = {"params": rng, "masking": jax.random.fold_in(rng, 1),
            "dropout": jax.random.fold_in(rng, 2)}
    variables = jax.jit(lambda x: self.model.init(rngs, x))(images)
    variables = dict(variables)
    if self.init_from != "random":
      params, _ = checkpoint.load_params(self.init_from)
      variables["params"] = load_encoder(variables["params"], params, self.init_from)
    return variables


def dtype_of(name: str) -> jnp.dtype:
  if name not in ("float32", "bfloat16", "float16"):
    raise ConfigError(f"config.model.dtype must be float32, bfloat16 or float16, got {name!r}")
  return jnp.dtype(name)


def model_description(config: ml_collections.ConfigDict) -> dict[str, Any]:
  v = decode_variant(config.model.variant)
  return dict(variant=config.model.variant, width=v.width, depth=v.depth, num_heads=v.num_heads,
              patch_size=v.patch_size, mlp_ratio=v.mlp_ratio, image_size=config.data.image_size)


def model_inputs(config: ml_collections.ConfigDict) -> Callable[[Batch], jax.Array]:
  """batch -> float32 (N, H, W, C) model input: its pixels normalised as config.data says, in
  the jitted step (one function, so that training and evaluation cannot differ)."""
  mean, std = tuple(config.data.mean), tuple(config.data.std)
  layout = config.data.batch_layout
  return lambda batch: pixels.normalize(batch["image"], mean, std, layout)


def pretrain_task(config: ml_collections.ConfigDict) -> Task:
  m = config.model
  model = mae_from_variant(m.variant, decoder_width=m.decoder_width,
                           decoder_depth=m.decoder_depth, decoder_heads=m.decoder_heads,
                           mask_ratio=m.mask_ratio, norm_pix_loss=m.norm_pix_loss,
                           dtype=dtype_of(m.dtype), attention=m.attention)
  num_patches = (config.data.image_size // model.patch_size) ** 2
  inputs = model_inputs(config)

  def loss_fn(params, model_state, batch, rng, example_ids):
    noise = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(rng, i), (num_patches,)))(
        example_ids)
    loss, _, _ = model.apply({"params": params}, inputs(batch), noise=noise, train=True)
    return loss, (model_state, {"loss": loss})

  s = config.pretrain
  make_tx = lambda schedule, params: optim.adamw(  # noqa: E731
      schedule, params, b1=s.b1, b2=s.b2, weight_decay=s.weight_decay)
  vis = config.visualize
  draw = lambda params, images: visualize.grid_png(  # noqa: E731
      model, params, images, vis, tuple(config.data.mean), tuple(config.data.std))
  snapshot = Snapshot(vis.every_steps, vis.num_images, draw) if vis.every_steps > 0 else None
  return Task("pretrain", model, loss_fn, make_tx, init_from="random",
              description=model_description(config), snapshot=snapshot)


def classifier_task(config: ml_collections.ConfigDict, stage: str, num_classes: int,
                    workdir: str) -> Task:
  """linprobe or finetune; `config[stage].init_from` "" means this run's pretrain export."""
  s = config[stage]
  probe = stage == "linprobe"
  model = classifier_from_variant(
      config.model.variant, num_classes, global_pool=s.global_pool,
      drop_path=0.0 if probe else s.drop_path, probe=probe, head_init_std=s.head_init_std,
      bn_axis_name=DATA_AXIS, dtype=dtype_of(config.model.dtype),
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

  def eval_fn(params, model_state, batch):
    logits = model.apply({"params": params, **model_state}, inputs(batch), train=False)
    w = batch["mask"]
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    return {"count": w.sum(), "loss_sum": (xent * w).sum(),
            "correct1": (losses.topk_correct(logits, batch["label"], 1) * w).sum(),
            "correct5": (losses.topk_correct(logits, batch["label"], 5) * w).sum()}

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
  return Task(stage, model, loss_fn, make_tx, init_from=init_from, eval_fn=eval_fn,
              description=model_description(config))


def load_encoder(params: Params, loaded: Params, source: str) -> Params:
  """Puts exported encoder weights into a classifier's `params["encoder"]`.

  Every encoder weight of the classifier must come from the export with the same
  shape; the export's final `norm` may go unused (global pooling replaces it by fc_norm).
  `loaded` is an encoder's params, or a whole model's with an "encoder" subtree (an
  MAE or classifier converted by mae_jax.convert).
  """
  if "encoder" in loaded:
    loaded = loaded["encoder"]
  target = params["encoder"]
  flat_t = traverse_util.flatten_dict(target, sep="/")
  flat_l = traverse_util.flatten_dict(loaded, sep="/")
  missing = sorted(k for k in flat_t if k not in flat_l)
  unexpected = sorted(k for k in flat_l if k not in flat_t and not k.startswith("norm/"))
  wrong = sorted(f"{k}: {flat_l[k].shape} vs model {flat_t[k].shape}" for k in flat_t
                 if k in flat_l and flat_l[k].shape != flat_t[k].shape)
  if missing or unexpected or wrong:
    raise ConfigError(f"init_from={source} does not fit the model: missing {missing or 'none'}; "
                     f"unexpected {unexpected or 'none'}; shape mismatches {wrong or 'none'}")
  new = {k: jnp.asarray(flat_l[k], flat_t[k].dtype) for k in flat_t}
  return {**params, "encoder": traverse_util.unflatten_dict(new, sep="/")}

