"""What a downstream stage trains on and at which learning rate, the same way for every arm.

  * config.data.labels < 1 (a fraction) or > 1 (a count): the labelled stages and baselines see
    that many training examples, a seeded subset (stratified by class where examples have one)
    drawn from config.seed alone, so both arms of a comparison get the same examples;
    pretraining still reads every training example.
  * config.<stage>.lr_grid: before the stage trains, one short run per base_lr on the training
    examples less a held-out slice (config.<stage>.lr_holdout of them, stratified, seeded),
    scored on that slice with the stage's score (never on the eval split); the stage then
    trains on all its examples at the best. Each arm runs its own search, so each is compared
    at its own best rate. A source with a `validation_split` of its own (a series) scores the
    trials there instead, trained on the whole training split, when the stage has an
    eval_split to point at it.
A source supports both when it is a data.base.Selectable (lr_grid alone: a validation_split).
"""

import os
from typing import Any, Callable

import ml_collections
import numpy as np

from mae_jax import registry
from mae_jax.data import labels
from mae_jax.data.base import Selectable
from mae_jax.distributed import echo
from mae_jax.errors import ConfigError

LR_SEARCH = "lr_search"    # WORKDIR/<run>/lr_search/base_lr=<lr>: one trial each
_NO_PERIODIC_EVAL = 10**9  # a trial is scored once, at its end


def train_examples(source: Any) -> int | None:
  """How many training examples a stage on `source` sees; None when the source cannot say."""
  split = source.train_split if isinstance(source, Selectable) else "train"
  return source.split_sizes.get(split)


def labelled_source(config: ml_collections.ConfigDict, source: Any) -> Any:
  """`source` with its training split cut to config.data.labels of it (the source itself when
  every label is kept)."""
  spec = config.data.labels
  if spec == labels.ALL:
    return source
  if not isinstance(source, Selectable):
    raise ConfigError(f"config.data.labels={spec}: {source.name} cannot keep a subset of its "
                      f"training examples; set it to 1.0 (every label)")
  n = source.num_examples(source.train_split)
  try:
    k = labels.count(spec, n)
  except ValueError as err:
    raise ConfigError(str(err)) from None
  classes = source.train_classes()
  picked = labels.subset(n, k, config.seed, classes)
  strata = (f"stratified over {len(np.unique(classes))} classes" if classes is not None
            else "not stratified")
  echo(f"labels: {k} of {n} training examples keep theirs (config.data.labels={spec:g}, "
       f"{strata}, seed {config.seed}); pretraining reads all {n}")
  return source.view(picked)


def check_batch(config: ml_collections.ConfigDict, stage: str, source: Any, examples: int,
                what: str = "labelled training examples") -> None:
  """A stage's global batch must fit in the `examples` it trains on (one line if not)."""
  batch = config[stage].batch_size
  if isinstance(source, Selectable) and source.examples_for_batch(batch) > examples:
    raise ConfigError(f"config.{stage}.batch_size={batch} exceeds the {examples} {what} "
                      f"(config.data.labels={config.data.labels:g}): lower the batch or keep "
                      f"more labels")


def check_rates(field: str, grid: Any, hint: str = "") -> None:
  """A learning-rate grid holds positive numbers (one line naming `field` if not)."""
  if any(not isinstance(lr, (int, float)) or lr <= 0 for lr in grid):
    raise ConfigError(f"{field}={tuple(grid)} must hold positive base learning rates{hint}")


def validate(config: ml_collections.ConfigDict, stage: registry.Stage) -> None:
  """config.<stage>'s lr_grid, lr_holdout and lr_search_steps."""
  s = config[stage.name]
  if not s.lr_grid:
    return
  if not stage.score:
    raise ConfigError(f"config.{stage.name}.lr_grid: the {stage.name} stage has no score to "
                      f"choose a learning rate by; leave it empty")
  check_rates(f"config.{stage.name}.lr_grid", s.lr_grid)
  if not 0 < s.lr_holdout < 1:
    raise ConfigError(f"config.{stage.name}.lr_holdout={s.lr_holdout} must be in (0, 1): the "
                      f"share of the training examples each trial is scored on")
  if s.lr_search_steps < 0:
    raise ConfigError(f"config.{stage.name}.lr_search_steps={s.lr_search_steps} must be >= 0 "
                      f"(0: the stage's own length)")


def choose_lr(config: ml_collections.ConfigDict, run: registry.Run, stage: registry.Stage,
              source: Any, train: Callable[[registry.Run, Any], dict[str, Any]]
              ) -> tuple[float, dict[str, float]]:
  """(the best base_lr of config.<stage>.lr_grid, {lr: its score on held-out data}).

  `train(trial run, source)` trains a trial and returns its result. The slice and the seeds
  are the run's own (its seed_key), so a stage and its twin search on the same examples.
  """
  s = config[stage.name]
  overrides = {**run.overrides, f"{stage.name}.eval_every_epochs": _NO_PERIODIC_EVAL}
  if s.lr_search_steps:
    overrides[f"{stage.name}.num_steps"] = s.lr_search_steps
  own = getattr(source, "validation_split", None)
  if own is not None and "eval_split" in s:
    # A source with a validation split of its own (a series' chronological one, where PatchTST
    # and LTSF-Linear choose): a random slice of overlapping windows would share rows with the
    # windows trained on, so trials train on the whole training split and are scored there.
    searched, where = source, f"the {own} split"
    overrides[f"{stage.name}.eval_split"] = own
    echo(f"[{run.folder}] choosing base_lr from {tuple(s.lr_grid)}: scored ({stage.score}) on "
         f"the {own} split ({source.split_sizes[own]} examples)")
  else:
    if not isinstance(source, Selectable):
      raise ConfigError(f"config.{stage.name}.lr_grid: {source.name} cannot hold out a slice "
                        f"of its training examples; leave lr_grid empty")
    n = source.num_examples(source.train_split)
    try:
      rest, held = labels.holdout(np.arange(n), s.lr_holdout, config.seed,
                                  source.train_classes())
    except ValueError as err:
      raise ConfigError(f"config.{stage.name}.lr_grid: {err}") from None
    check_batch(config, stage.name, source, len(rest), "training examples left beside the "
                "held-out slice of config.{stage.name}.lr_holdout".replace("{stage.name}",
                                                                            stage.name))
    searched, where = source.view(rest, held), "the held-out slice"
    echo(f"[{run.folder}] choosing base_lr from {tuple(s.lr_grid)}: trained on {len(rest)}, "
         f"scored ({stage.score}) on {len(held)} held-out training examples")
  scores = {}
  for lr in s.lr_grid:
    trial = registry.Run(os.path.join(run.folder, LR_SEARCH, f"base_lr={lr:g}"), run.stage,
                         {**overrides, f"{stage.name}.base_lr": float(lr)},
                         seed_name=run.seed_key)
    scores[float(lr)] = float(train(trial, searched)[stage.score])
  finite = {lr: v for lr, v in scores.items() if np.isfinite(v)}
  if not finite:
    raise ConfigError(f"config.{stage.name}.lr_grid: every trial diverged ({scores}); "
                      f"try smaller rates")
  pick = max if stage.maximize else min
  best = pick(finite, key=finite.get)
  echo(f"[{run.folder}] base_lr {best:g} ({stage.score} {finite[best]:.4g} on {where}); "
       f"all: {', '.join(f'{lr:g}: {v:.4g}' for lr, v in scores.items())}")
  return best, scores
