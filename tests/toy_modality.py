"""A modality written outside the package, as a user would: noisy sine waves, MAE pretraining on
1-D patches, a `classify` stage that tells their frequency apart, the same stage from random
init as a twin baseline and a majority-class baseline. The file is at once the modality (it
registers itself when imported) and its config:

  mae-jax --config=tests/toy_modality.py --workdir=/tmp/toy

No file of mae_jax changes to run it; tests/test_registry.py runs it end to end.
"""

import dataclasses
from typing import Any, Iterator

import ml_collections
import numpy as np

from mae_jax import config_lib, losses, registry
from mae_jax.masking import example_noise
from mae_jax.models import Classifier, from_variant
from mae_jax.tasks import base

DATASET = "toy_sines"


@dataclasses.dataclass(frozen=True)
class Sines:
  """Sine waves of one of `num_classes` frequencies, random phase, Gaussian noise (the
  DataSource protocol: name, splits, split_sizes, describe())."""
  name: str
  x: dict[str, np.ndarray]     # split -> (N, length, 1) float32
  y: dict[str, np.ndarray]     # split -> (N,) int32
  num_classes: int

  @property
  def splits(self) -> tuple[str, ...]:
    return tuple(self.x)

  @property
  def split_sizes(self) -> dict[str, int]:
    return {s: len(v) for s, v in self.x.items()}

  def describe(self) -> str:
    return f"{self.split_sizes} waves, {self.num_classes} frequencies"


def load_sines(config: ml_collections.ConfigDict) -> Sines:
  d = config.data
  rng = np.random.default_rng(config.seed)
  x, y = {}, {}
  for split, n in (("train", d.num_train), ("test", d.num_test)):
    labels = rng.integers(0, d.num_classes, n)
    t = np.arange(d.length)[None, :] / d.length
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    waves = np.sin(2 * np.pi * (labels[:, None] + 1) * t + phase)
    waves += d.noise * rng.standard_normal(waves.shape)
    x[split], y[split] = waves[:, :, None].astype(np.float32), labels.astype(np.int32)
  return Sines(DATASET, x, y, d.num_classes)


def _eval_batches(source: Sines, batch_size: int, num_shards: int, shard_index: int
                  ) -> Iterator[base.Batch]:
  n = source.split_sizes["test"]
  for index, valid in base.ordered_rows(n, batch_size, num_shards, shard_index):
    rows = np.where(valid, index, n - 1)
    yield {"x": source.x["test"][rows], "y": source.y["test"][rows],
           "mask": valid.astype(np.float32)}


def pretrain_task(config: ml_collections.ConfigDict, source: Sines, workdir: str) -> base.Task:
  """The shared MAE on the waves' 1-D patches; its encoder exported for `classify`."""
  del workdir
  model = base.pretrain_model(config)
  tokens = config.data.length // model.patch_size

  def loss_fn(params, model_state, batch, rng, example_ids):
    noise = example_noise(rng, example_ids, (tokens,))
    loss, _, _ = model.apply({"params": params}, batch["x"], noise=noise, train=True)
    return loss, (model_state, {"loss": loss})

  data = base.shuffled_rows(source.split_sizes["train"], config.pretrain.batch_size,
                            lambda rows: {"x": source.x["train"][rows]})
  return base.Task("pretrain", model, loss_fn, base.mae_tx(config.pretrain),
                   input_shape=(config.data.length, 1), data=data,
                   finish=lambda variables, stage_dir: base.export_encoder(
                       config, variables, stage_dir))


def classify_task(config: ml_collections.ConfigDict, source: Sines, workdir: str) -> base.Task:
  """The encoder (config.classify.init_from) under a linear head, cross-entropy, accuracy."""
  s = config.classify
  model = from_variant(Classifier, config.model.variant, num_classes=source.num_classes)

  def loss_fn(params, model_state, batch, rng, example_ids):
    logits = model.apply({"params": params}, batch["x"], train=True)
    loss = losses.classification_loss(logits, batch["y"], 0.0)
    return loss, (model_state, {"loss": loss})

  def sums(params, model_state, batch):
    logits = model.apply({"params": params}, batch["x"], train=False)
    correct = losses.topk_correct(logits, batch["y"], 1) * batch["mask"]
    return {"count": batch["mask"].sum(), "correct": correct.sum()}

  evaluation = base.Evaluation(
      sums, lambda shards, index: _eval_batches(source, config.data.eval_batch_size, shards,
                                                index),
      metrics=lambda t: {"accuracy": 100 * t["correct"] / max(t["count"], 1.0)},
      result=lambda m: {"accuracy": m["accuracy"]})
  data = base.shuffled_rows(source.split_sizes["train"], s.batch_size,
                            lambda rows: {"x": source.x["train"][rows],
                                          "y": source.y["train"][rows]})
  return base.Task("classify", model, loss_fn, base.finetune_tx(config, s),
                   input_shape=(config.data.length, 1),
                   init_from=base.encoder_init(s.init_from, workdir), data=data,
                   evaluation=evaluation)


def majority(config: ml_collections.ConfigDict, source: Sines, workdir: str) -> dict[str, Any]:
  """The test accuracy of always answering the most frequent training class."""
  del config, workdir
  top = np.bincount(source.y["train"]).argmax()
  return {"accuracy": 100 * float(np.mean(source.y["test"] == top))}


registry.register(registry.Modality(
    name="toy",
    serves=lambda config: config.data.dataset == DATASET,
    load_source=load_sines,
    stages=(registry.Stage("pretrain", task=pretrain_task, needs_labels=False,
                           section=lambda: config_lib.loop_section(b1=0.9, b2=0.95)),
            registry.Stage("classify", task=classify_task, section=lambda: config_lib.loop_section(
                b1=0.9, b2=0.999, layer_decay=0.75, grad_clip_norm=0.0, init_from=""))),
    baselines=(registry.Baseline("classify_random_init", twin="classify"),
               registry.Baseline("majority", compute=majority)),
    model_size=lambda config: {"length": config.data.length},
    data_fields=lambda: dict(length=32, num_train=128, num_test=64, num_classes=4, noise=0.3),
))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = config_lib.base_config("toy")
  c.baselines = "classify_random_init,majority"
  c.data.dataset = DATASET
  c.data.eval_batch_size = 32
  c.model.variant = "mu/4"
  c.model.norm_pix_loss = False
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 32, 1, 2
  for stage in config_lib.stage_sections(c):
    c[stage].update(batch_size=32, num_epochs=3, base_lr=2e-3, warmup_epochs=1,
                    log_every_steps=4, checkpoint_every_steps=100, eval_every_epochs=3)
  return c
