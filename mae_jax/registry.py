"""Modalities by name: what each serves, its stages, its baselines and its checks.

A modality (images, label maps, volumes, series, tables, or one of a user's) is one module that
builds a `Modality` and calls `register` at import time. The runner (experiment.py) and the
config library ask this registry which modality a config's dataset belongs to, and from the
record: how to load the data, how to check the config and the data, which stages there are and
which Task each trains, which baselines and how each runs. Neither names a modality.

The modalities shipped with mae_jax are imported on first use (BUILTIN); another one registers
itself when its module is imported, e.g. from the config file that uses it.
"""

import dataclasses
import importlib
import os
from typing import Any, Callable

import ml_collections

from mae_jax.errors import ConfigError

ConfigDict = ml_collections.ConfigDict
# The shipped modalities, in the order they are asked whether they serve a dataset.
BUILTIN = ("mae_jax.tasks.tables", "mae_jax.tasks.series", "mae_jax.tasks.volumes",
           "mae_jax.tasks.segmentation", "mae_jax.tasks.images")
# An init_from that names the export of an earlier run of the same job (relative to WORKDIR).
PRODUCED_BY = "workdir:"


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run: `stage` in WORKDIR/<folder>, with dotted config fields overridden.

  Its random streams (data order, augmentation, init) come from `seed_name`, the folder unless
  set: a run that shares a stage's seed_name draws exactly what that stage draws.
  """
  folder: str
  stage: str
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  seed_name: str = ""

  @property
  def init_from(self) -> str | None:
    return self.overrides.get(f"{self.stage}.init_from")

  @property
  def seed_key(self) -> str:
    return self.seed_name or self.folder


@dataclasses.dataclass(frozen=True)
class Stage:
  """A stage of a modality: `task` (trained by the loop) or `run` (computed without training).

  `section` builds the stage's config.<name> defaults (every field the stage reads, nothing
  else); None for a stage without one (visualize reads config.visualize).
  """
  name: str
  title: str = ""      # its row in results.md and its plot's title; "" = the name
  # (config, source, workdir) -> the Task train.train_stage runs.
  task: Callable[[ConfigDict, Any, str], Any] | None = None
  # (config, source, workdir) -> the stage's result, for a stage the loop does not train.
  run: Callable[[ConfigDict, Any, str], dict[str, Any]] | None = None
  section: Callable[[], ConfigDict] | None = None
  # config -> None, raising ConfigError: checks of config.<name>, when the stage runs.
  validate: Callable[[ConfigDict], None] | None = None
  needs_labels: bool = True
  # config -> whether the stage loads config.<name>.init_from as an encoder export, which
  # experiment.validate checks against config.model (None: whenever its section has the field;
  # a forecaster other than the transformer has no encoder to load).
  loads_encoder: Callable[[ConfigDict], bool] | None = None
  # The result entry its learning rate is chosen by (config.<name>.lr_grid; selection.py):
  # "" = none, and whether higher is better.
  score: str = ""
  maximize: bool = True

  @property
  def trains(self) -> bool:
    return self.task is not None


@dataclasses.dataclass(frozen=True)
class Baseline:
  """What a stage is compared with: training runs, or a result computed without training.

  `twin` declares the baseline to be stage `twin` itself from another init (the encoder's,
  "random" unless `overrides` say otherwise): `runs` is then that one run, paired with the
  stage (the same seeds for data order, augmentation and head init; only the init differs).
  """
  name: str
  title: str = ""      # its row in results.md; "" = the name
  twin: str = ""
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  # config -> the baseline's training runs in order; its result is the last one's.
  runs: Callable[[ConfigDict], list[Run]] | None = None
  # (config, source, workdir) -> result, without the loop.
  compute: Callable[[ConfigDict, Any, str], dict[str, Any]] | None = None
  needs_labels: bool = True

  def training_runs(self, config: ConfigDict) -> list[Run]:
    folder = os.path.join("baselines", self.name)
    if self.twin:
      # Paired with the stage: its seeds for data order, augmentation and head init.
      return [Run(folder, self.twin, {f"{self.twin}.init_from": "random", **self.overrides},
                  seed_name=self.twin)]
    return self.runs(config) if self.runs is not None else []


@dataclasses.dataclass(frozen=True)
class Modality:
  """What a kind of data brings to the one loop (see the module docstring)."""
  name: str
  # config -> whether this modality serves config.data.dataset (with config.stages, where a
  # dataset serves two modalities: a csv: file is a table to impute or a series to forecast).
  serves: Callable[[ConfigDict], bool]
  # config -> the data source (data/base.py's DataSource protocol).
  load_source: Callable[[ConfigDict], Any]
  stages: tuple[Stage, ...]
  baselines: tuple[Baseline, ...] = ()
  # config -> the size entries of model.json (image_size, lookback, roi_size, ...).
  model_size: Callable[[ConfigDict], dict[str, Any]] = lambda config: {}
  # config.data's fields for this modality, beyond dataset and eval_batch_size.
  data_fields: Callable[[], dict[str, Any]] = dict
  # Config sections other than the stages' (e.g. "visualize": ...): name -> builder.
  sections: dict[str, Callable[[], ConfigDict]] = dataclasses.field(default_factory=dict)
  # (config, runs, workdir) -> None: the modality's checks of config.model and config.data.
  validate: Callable[[ConfigDict, list[Run], str], None] | None = None
  # (config, source, runs) -> None: what only the data can tell (enough examples, ...).
  validate_data: Callable[[ConfigDict, Any, list[Run]], None] | None = None
  # (config, image_size) -> None: the rest of `config_lib.smoke` for this modality.
  smoke: Callable[[ConfigDict, int], None] | None = None
  # (config, workdir, summary, source) -> None: after every stage and baseline (plots).
  summarize: Callable[[ConfigDict, str, dict[str, Any], Any], None] | None = None
  # (config, source) -> what the stages and baselines that need labels read, when it is not
  # `source` itself (label maps beside the images pretraining reads).
  labelled_source: Callable[[ConfigDict, Any], Any] | None = None
  # Serves any dataset no other modality serves (images: TFDS names).
  fallback: bool = False

  def titles(self) -> dict[str, str]:
    """Stage and baseline names -> their titles (for the report)."""
    return {x.name: x.title or x.name for x in (*self.stages, *self.baselines)}

  def twins(self) -> dict[str, str]:
    """Twin baseline -> its stage, for the baselines that differ from it in the init alone."""
    return {b.name: b.twin for b in self.baselines if b.twin and not b.overrides}

  def stage(self, name: str) -> Stage:
    for s in self.stages:
      if s.name == name:
        return s
    raise ConfigError(f"config.stages: {self.name} has no stage {name!r}; its stages: "
                      f"{', '.join(s.name for s in self.stages)}")

  def baseline(self, name: str) -> Baseline:
    for b in self.baselines:
      if b.name == name:
        return b
    raise ConfigError(f"config.baselines: {self.name} has no baseline {name!r}; its baselines: "
                      f"{', '.join(b.name for b in self.baselines) or 'none'}")


_MODALITIES: dict[str, Modality] = {}


def register(modality: Modality) -> Modality:
  """Adds (or replaces, on re-import) `modality`; returns it."""
  _MODALITIES[modality.name] = modality
  return modality


def _load_builtin() -> None:
  for module in BUILTIN:
    importlib.import_module(module)


def modalities() -> list[Modality]:
  """Every registered modality: the shipped ones first, in BUILTIN's order."""
  _load_builtin()
  return list(_MODALITIES.values())


def get(name: str) -> Modality:
  if name not in _MODALITIES:
    _load_builtin()
  if name not in _MODALITIES:
    raise ConfigError(f"unknown modality {name!r}; known: {', '.join(_MODALITIES)}")
  return _MODALITIES[name]


def for_config(config: ConfigDict) -> Modality:
  """The modality that serves config.data.dataset."""
  found = [m for m in modalities() if not m.fallback and m.serves(config)]
  if len(found) > 1:
    raise ConfigError(f"config.data.dataset={config.data.dataset!r} is served by "
                      f"{', '.join(m.name for m in found)}: a modality must claim it alone")
  found = found or [m for m in modalities() if m.fallback]
  if not found:
    raise ConfigError(f"config.data.dataset={config.data.dataset!r}: no modality serves it")
  return found[0]


def names(field: str) -> list[str]:
  """'a, b,,c' -> ['a', 'b', 'c']: the comma lists of the configs (stages, baselines, columns)."""
  return [s.strip() for s in field.split(",") if s.strip()]


def runs(config: ConfigDict, modality: Modality | None = None) -> list[Run]:
  """Every training run the config asks for: its trained stages, then its baselines'."""
  m = modality or for_config(config)
  out = [Run(s, s) for s in names(config.stages) if m.stage(s).trains]
  for b in names(config.baselines):
    out += m.baseline(b).training_runs(config)
  return out
