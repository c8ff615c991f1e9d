"""The contract between a stage and the one training loop, and what every modality shares.

A stage brings a Task: its model and loss, its TrainData, an Evaluation (per-device sums ->
metrics -> result.json entries), and `finish` for what it writes at the end. `train.train_stage`
runs any Task; nothing here knows a modality.
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

from mae_jax import checkpoint, optim, registry, weights
from mae_jax.data.base import per_shard, steps_per_epoch  # noqa: F401  (the modalities' too)
from mae_jax.data.skips import SkipLog
from mae_jax.distributed import echo
from mae_jax.models import MAE, decode_variant, from_variant

Params = Any
Batch = dict[str, jax.Array]
# (params, model_state, batch, rng, example_ids) -> (loss, (model_state, metrics)).
# example_ids are the examples' positions in the global batch: per-example randomness
# keyed on them is the same whatever the number of devices or micro-batches.
LossFn = Callable[[Params, dict, Batch, jax.Array, jax.Array], tuple[jax.Array, tuple[dict, dict]]]
# Where a stage's encoder comes from when config.<stage>.init_from is "": this job's pretraining.
PRETRAIN_EXPORT = os.path.join("pretrain", "export")
PRETRAIN_CHECKPOINTS = os.path.join("pretrain", "checkpoints")   # what visualize reads


@dataclasses.dataclass(frozen=True)
class TrainData:
  """A stage's training batches."""
  steps_per_epoch: int
  # (seed, start_step, num_shards, shard_index) -> this process's endless batches from global
  # step start_step on: its 1/num_shards of every global batch.
  batches: Callable[[int, int, int, int], Iterator[Batch]]
  # Optional: the record of the examples the batches skipped as unreadable (images that do not
  # decode); the loop puts its result, all processes' together, into result.json.
  skips: SkipLog | None = None


def shuffled_rows(n: int, batch_size: int, take: Callable[[np.ndarray], Batch]) -> TrainData:
  """TrainData over n in-memory examples (series windows, table rows): reshuffled every epoch
  from the seed, whole global batches only; take(indices) -> this shard's batch."""
  spe = steps_per_epoch(n, batch_size)

  def batches(seed: int, start_step: int, num_shards: int, shard_index: int
              ) -> Iterator[Batch]:
    rows_per_shard = per_shard(batch_size, num_shards)
    step = start_step
    while True:
      epoch, j = divmod(step, spe)
      rows = np.random.default_rng([seed, epoch]).permutation(n)[j * batch_size:
                                                                 (j + 1) * batch_size]
      yield take(rows[shard_index * rows_per_shard:(shard_index + 1) * rows_per_shard])
      step += 1

  return TrainData(spe, batches)


def ordered_rows(n: int, batch_size: int, num_shards: int, shard_index: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Every one of n in-memory examples once, in order, in global batches of batch_size (the
  last padded): this shard's (indices, valid) per batch; padding repeats the last example."""
  rows_per_shard = per_shard(batch_size, num_shards)
  for start in range(0, n, batch_size):
    index = np.arange(start, start + batch_size)[shard_index * rows_per_shard:
                                                (shard_index + 1) * rows_per_shard]
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
class Monitor:
  """Metrics of the model beside each evaluation and at the end (e.g. a k-NN classifier on its
  frozen features), computed on the host by the process that writes: logged with the eval
  metrics, and in result.json."""
  # Loads what it measures on (once) -> measure(host params) -> {metric: value}.
  prepare: Callable[[], Callable[[Params], dict[str, float]]]


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
  # True: init_from holds an MAE to continue pretraining from, its encoder and decoder, in any
  # format weights.load_into_mae reads; False: an encoder export for the model's "encoder".
  init_mae: bool = False
  data: TrainData | None = None
  evaluation: Evaluation | None = None
  # ({"params": ..., **model state} of the final step, stage dir) at the end; -> None or
  # {tag: uint8 (H, W, C) image} for TensorBoard at the final step.
  finish: Callable[[dict[str, Any], str], dict[str, np.ndarray] | None] | None = None
  snapshot: Snapshot | None = None
  monitor: Monitor | None = None

  def init(self, rng: jax.Array, sample: jax.Array) -> dict[str, Any]:
    """Random variables for inputs shaped like `sample`, then `init_from` applied."""
    rngs = {"params": rng, "masking": jax.random.fold_in(rng, 1),
            "dropout": jax.random.fold_in(rng, 2)}
    variables = jax.jit(lambda x: self.model.init(rngs, x))(sample)
    variables = dict(variables)
    if self.init_from == "random":
      return variables
    if self.init_mae:
      variables["params"] = continue_mae(self.name, self.model, variables["params"],
                                         self.init_from)
    else:
      params, _ = weights.restore_export(self.init_from)
      variables["params"] = weights.load_encoder(variables["params"], params, self.init_from)
    return variables


def continue_mae(stage: str, model: nn.Module, params: Params, init_from: str) -> Params:
  """An MAE's fresh `params` with config.<stage>.init_from's weights in, saying what it loaded.

  A resumed stage restores its checkpoint over these (train.py): init_from counts at step 0 only.
  """
  params, fresh = weights.load_into_mae(model, params, init_from, f"config.{stage}.init_from")
  line = f"[{stage}] starts from {init_from}: " + (
      "its encoder; it has no decoder, so the decoder starts freshly initialised"
      if "decoder" in fresh else "its encoder and decoder")
  if "encoder/mask_token" in fresh:
    line += "; the encoder mask token, which it lacks, starts freshly initialised"
  echo(line)
  return params


def encoder_init(init_from: str, workdir: str) -> str:
  """config.<stage>.init_from -> the export to load: "" means this job's pretraining."""
  return init_from or os.path.join(workdir, PRETRAIN_EXPORT)


def model_description(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """model.json of an export: the encoder's architecture and the input it was trained on."""
  v = decode_variant(config.model.variant)
  return dict(variant=config.model.variant, width=v.width, depth=v.depth, num_heads=v.num_heads,
              patch_size=v.patch_size, mlp_ratio=v.mlp_ratio,
              **registry.for_config(config).model_size(config))


def pretrain_model(config: ml_collections.ConfigDict) -> MAE:
  """The config's MAE (config.model), whatever the modality: the tokens' rank comes with the
  input."""
  m = config.model
  return from_variant(MAE, m.variant, decoder_width=m.decoder_width,
                      decoder_depth=m.decoder_depth, decoder_heads=m.decoder_heads,
                      mask_ratio=m.mask_ratio, norm_pix_loss=m.norm_pix_loss,
                      dtype=jnp.dtype(m.dtype), attention=m.attention,
                      encoder_mask_tokens=m.encoder_mask_tokens, mask_value=m.mask_value,
                      patch_stride=m.patch_stride)


def adamw_tx(s: ml_collections.ConfigDict, *, layer_decay: float = 1.0, depth: int = 0,
             grad_clip_norm: float = 0.0,
             trainable: Callable[[list[str]], bool] | None = None
             ) -> Callable[[optax.Schedule, Params], optax.GradientTransformation]:
  """The AdamW of a stage (config.<stage> `s`: b1, b2, weight_decay), with layer-wise lr decay
  over a `depth`-block encoder, gradient clipping, and parameters outside `trainable` frozen."""

  def make_tx(schedule: optax.Schedule, params: Params) -> optax.GradientTransformation:
    if trainable is None:
      return optim.adamw(schedule, params, b1=s.b1, b2=s.b2, weight_decay=s.weight_decay,
                         layer_decay=layer_decay, depth=depth, grad_clip_norm=grad_clip_norm)
    # The layer-wise scales are a tree of every parameter, which the frozen part's transform
    # never sees: applied after it (a per-leaf scale commutes with the lr's).
    tx = optim.freeze(optim.adamw(schedule, params, b1=s.b1, b2=s.b2,
                                  weight_decay=s.weight_decay, grad_clip_norm=grad_clip_norm),
                      params, trainable=trainable)
    if layer_decay == 1.0:
      return tx
    return optax.chain(tx, optim.scale_by_tree(optim.layerwise_lr_scales(params, depth,
                                                                         layer_decay)))

  return make_tx


def mae_tx(s: ml_collections.ConfigDict
           ) -> Callable[[optax.Schedule, Params], optax.GradientTransformation]:
  """The optimizer of a stage that trains an MAE (config.<stage> `s`): AdamW, no layer decay."""
  return adamw_tx(s)


def finetune_tx(config: ml_collections.ConfigDict, s: ml_collections.ConfigDict,
                freeze_encoder: bool = False
                ) -> Callable[[optax.Schedule, Params], optax.GradientTransformation]:
  """A stage that fine-tunes the config's encoder under a head: AdamW with s.layer_decay over
  the encoder's blocks and s.grad_clip_norm; with `freeze_encoder` the head alone moves (what
  the encoder's features are worth, without the fine-tune's confound)."""
  return adamw_tx(s, layer_decay=s.layer_decay, depth=decode_variant(config.model.variant).depth,
                  grad_clip_norm=s.grad_clip_norm,
                  trainable=(lambda names: names[0] != "encoder") if freeze_encoder else None)


def export_encoder(config: ml_collections.ConfigDict, variables: dict[str, Any],
                   stage_dir: str) -> None:
  """stage_dir/export: the MAE's encoder, what the other stages start from
  (config.<stage>.init_from). An encoder mask token has no use there (they see every patch)."""
  encoder = {k: v for k, v in variables["params"]["encoder"].items() if k != "mask_token"}
  checkpoint.export_params(os.path.join(stage_dir, "export"), encoder, model_description(config))
