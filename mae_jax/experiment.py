"""Runs the stages a config names, then the baselines, and writes WORKDIR/summary.json.

What a stage or a baseline is comes from the dataset's modality (registry.py); this file knows
none of them.

Each stage works in WORKDIR/<stage>; a stage whose result.json exists is done and is
skipped, one with checkpoints resumes, so rerunning the same command continues a run.
"""

import dataclasses
import json
import os
from typing import Any, Callable

import jax
import ml_collections
from etils import epath   # the workdir may be on GCS (gs://), where open() cannot go

from mae_jax import config_lib, per_class, registry, selection, train, weights
from mae_jax.checkpoint import MODEL_JSON
from mae_jax.distributed import echo, is_main, main_first
from mae_jax.errors import ConfigError
from mae_jax.models.attention import ATTENTION_KINDS, cudnn_runs
from mae_jax.parallel import PARALLEL_KINDS
from mae_jax.registry import PRODUCED_BY, Run, names
from mae_jax.tasks import base

SUMMARY_JSON = "summary.json"
DTYPES = ("float32", "bfloat16", "float16")


def with_overrides(config: ml_collections.ConfigDict, overrides: dict[str, Any], workdir: str
                   ) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted fields replaced (an earlier run's export made absolute)."""
  if not overrides:
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in overrides.items():
    if isinstance(value, str) and value.startswith(PRODUCED_BY):
      value = os.path.join(workdir, value.removeprefix(PRODUCED_BY), "export")
    section, field = key.split(".")
    config[section][field] = value
  return config


def _check_names(config: ml_collections.ConfigDict, m: registry.Modality) -> None:
  """config.stages and config.baselines name what the dataset's modality has."""
  for field in ("stages", "baselines"):
    of = (lambda x: x.stages) if field == "stages" else (lambda x: x.baselines)
    known = [x.name for x in of(m)]
    for name in names(config[field]):
      if name in known:
        continue
      owners = [o.name for o in registry.modalities() if name in [x.name for x in of(o)]]
      listed = f"its {field}: {', '.join(known) or 'none'}"
      if not owners:
        raise ConfigError(f"config.{field}: unknown {field[:-1]} {name!r}; "
                          f"config.data.dataset={config.data.dataset!r} holds {m.name}, {listed}")
      raise ConfigError(f"config.{field}: config.data.dataset={config.data.dataset!r} holds "
                        f"{m.name}, which has no {field[:-1]} {name!r} ({name} is of "
                        f"{', '.join(owners)}); {listed}")


def validate(config: ml_collections.ConfigDict, workdir: str = "") -> None:
  """Refuses a config that cannot run, naming the field and the reason, before anything compiles."""
  m = registry.for_config(config)
  _check_names(config, m)
  config_lib.check_fields(config)
  runs = registry.runs(config, m)
  for stage in sorted({r.stage for r in runs}):
    if stage not in config:
      raise ConfigError(f"config.{stage}: the stage's section is missing; build the config with "
                        f"config_lib.base_config({m.name!r})")
  spec = config.data.labels
  if spec <= 0 or (spec > 1 and spec != int(spec)):
    raise ConfigError(f"config.data.labels={spec} must be a fraction in (0, 1] or a whole "
                      f"count > 1 of labelled training examples")
  if not 0.0 < config.model.mask_ratio < 1.0:
    raise ConfigError(f"config.model.mask_ratio must be in (0, 1), got {config.model.mask_ratio}")
  if config.model.mask_value not in ("learned", "zero"):
    raise ConfigError(f"config.model.mask_value must be 'learned' or 'zero', got "
                      f"{config.model.mask_value!r}")
  if m.validate is not None:
    m.validate(config, runs, workdir)
  for stage in sorted({r.stage for r in runs}):
    if m.stage(stage).validate is not None:
      m.stage(stage).validate(config)
    selection.validate(config, m.stage(stage))
    if config[stage].lr_schedule not in ("cosine", "poly"):
      raise ConfigError(f"config.{stage}.lr_schedule must be 'cosine' or 'poly', got "
                        f"{config[stage].lr_schedule!r}")
  if config.parallel not in PARALLEL_KINDS:
    raise ConfigError(f"config.parallel must be one of {PARALLEL_KINDS}, got {config.parallel!r}")
  if config.parallel == "pmap" and jax.process_count() > 1:
    # pmap's state lives per process (host-local arrays), which Orbax cannot save collectively.
    raise ConfigError("config.parallel='pmap' runs in a single process only; multi-process jobs "
                      "use 'shard_map' (the default)")
  if config.model.dtype not in DTYPES:
    raise ConfigError(f"config.model.dtype must be float32, bfloat16 or float16, got "
                      f"{config.model.dtype!r}")
  if config.model.attention not in ATTENTION_KINDS:
    raise ConfigError(f"config.model.attention must be one of {ATTENTION_KINDS}, got "
                      f"{config.model.attention!r}")
  if config.model.attention == "cudnn" and not cudnn_runs(config.model.dtype):
    raise ConfigError("config.model.attention='cudnn' needs an NVIDIA GPU and "
                      "config.model.dtype 'bfloat16' or 'float16'; 'auto' picks it where it runs")
  devices = jax.device_count()
  if config.data.eval_batch_size <= 0 or config.data.eval_batch_size % devices:
    raise ConfigError(f"config.data.eval_batch_size={config.data.eval_batch_size} is not a "
                      f"positive multiple of the {devices} devices")
  for r in runs:
    check_batch_size(config[r.stage], devices, f"config.{r.stage}")
    if "init_from" not in config[r.stage]:
      continue   # the stage trains from scratch (an MAE)
    run_config = with_overrides(config, {k: v for k, v in r.overrides.items()
                                         if not str(v).startswith(PRODUCED_BY)}, workdir)
    init_from = run_config[r.stage].init_from
    loads = m.stage(r.stage).loads_encoder
    if not str(r.init_from or "").startswith(PRODUCED_BY) and (loads is None or loads(run_config)):
      _check_init_from(config, r.stage, init_from, workdir)


def check_batch_size(cfg: ml_collections.ConfigDict, devices: int, where: str) -> None:
  """A stage's global batch must split evenly over the devices, then into grad_accum_steps."""
  if cfg.batch_size <= 0 or cfg.batch_size % devices:
    raise ConfigError(f"{where}.batch_size={cfg.batch_size} (the global batch) is not a "
                      f"positive multiple of the {devices} devices")
  if cfg.grad_accum_steps < 1 or (cfg.batch_size // devices) % cfg.grad_accum_steps:
    raise ConfigError(f"{where}.grad_accum_steps={cfg.grad_accum_steps} does not divide "
                      f"the per-device batch {cfg.batch_size // devices}")


def validate_data(config: ml_collections.ConfigDict, source: Any) -> None:
  """What only the dataset can tell (the modality's checks: enough examples for a batch, ...)."""
  m = registry.for_config(config)
  if m.validate_data is not None:
    m.validate_data(config, source, registry.runs(config, m))


def _check_init_from(config: ml_collections.ConfigDict, stage: str, init_from: str,
                     workdir: str) -> None:
  """The encoder a classifier stage starts from must exist and have the config's architecture."""
  if init_from == "random":
    return
  field = f"config.{stage}.init_from"
  if not init_from:
    if "pretrain" in names(config.stages):
      return                       # this run's pretrain stage writes it first
    init_from = base.encoder_init("", workdir)
    if not weights.is_export(init_from):
      raise ConfigError(f"{field} is empty, which means this run's pretrain export, but "
                        f"{init_from} has none: add pretrain to config.stages or set {field}")
  if not weights.is_export(init_from):
    raise ConfigError(f"{field}={init_from!r} is not an exported encoder (no "
                      f"{MODEL_JSON} there)")
  exported = weights.load_description(init_from)
  expected = base.model_description(config)
  keys = ("width", "depth", "num_heads", "patch_size", "mlp_ratio")
  wrong = [f"{k} {exported.get(k)} vs {expected[k]}" for k in keys
           if exported.get(k) != expected[k]]
  if wrong:
    raise ConfigError(f"{field}={init_from!r} does not fit config.model.variant="
                      f"{config.model.variant!r}: {', '.join(wrong)} (export vs config)")


def _stage_seed(seed: int, name: str) -> int:
  # Fixed streams per stage (Run.seed_key): distinct between stages, shared by a stage's twins.
  return seed * 1000 + sum(map(ord, name))


def run_stage(config: ml_collections.ConfigDict, run: Run, workdir: str, source: Any
              ) -> dict[str, Any]:
  """Trains `run` in WORKDIR/<run.folder>, or returns its result if it finished; first, with
  config.<stage>.lr_grid, chooses its base_lr on a held-out slice (selection.py)."""
  stage = registry.for_config(config).stage(run.stage)
  examples = selection.train_examples(source)
  # The run's own batch size and grid: a sweep or a baseline may override them (a baseline on
  # another recipe, LTSF-Linear's, brings its own grid or none).
  own = with_overrides(config, run.overrides, workdir)
  if examples is not None:
    selection.check_batch(own, run.stage, source, examples)
  extra: dict[str, Any] = {}
  if own[run.stage].lr_grid:
    best, scores = selection.choose_lr(
        own, run, stage, source, lambda trial, src: _train(config, trial, workdir, src))
    run = dataclasses.replace(run, overrides={**run.overrides, f"{run.stage}.base_lr": best})
    extra = {"base_lr": best, "lr_search": {f"{lr:g}": v for lr, v in scores.items()}}
  result = _train(config, run, workdir, source)
  return {**result, **extra, **({"train_examples": examples} if examples is not None else {})}


def _train(config: ml_collections.ConfigDict, run: Run, workdir: str, source: Any
           ) -> dict[str, Any]:
  stage_dir = os.path.join(workdir, run.folder)
  done = os.path.join(stage_dir, train.RESULT_JSON)
  if epath.Path(done).exists():
    echo(f"[{run.folder}] already finished: {done}")
    return json.loads(epath.Path(done).read_text())
  config = with_overrides(config, run.overrides, workdir)
  task = registry.for_config(config).stage(run.stage).task(config, source, workdir)
  return train.train_stage(task, config[run.stage], stage_dir,
                           seed=_stage_seed(config.seed, run.seed_key), parallel=config.parallel)


def _labelled(config: ml_collections.ConfigDict, m: registry.Modality, source: Any
              ) -> Callable[[], Any]:
  """() -> what the stages that need labels read: the modality's labelled source, cut to
  config.data.labels; built on first use, once."""
  made: list[Any] = []

  def get() -> Any:
    if not made:
      data = source if m.labelled_source is None else m.labelled_source(config, source)
      made.append(selection.labelled_source(config, data))
    return made[0]

  return get


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs config.stages then config.baselines in `workdir`; returns and writes the summary."""
  validate(config, workdir)
  m = registry.for_config(config)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  if is_main():
    epath.Path(workdir, "config.json").write_text(config.to_json_best_effort(indent=2))
  source = main_first(lambda: m.load_source(config), "dataset ready")
  validate_data(config, source)
  echo(f"dataset {source.name}: {source.describe()}; {jax.device_count()} devices in "
       f"{jax.process_count()} process(es): {jax.devices()}")
  labelled = _labelled(config, m, source)
  summary: dict[str, Any] = {}
  for name in names(config.stages):
    stage = m.stage(name)
    data = labelled() if stage.needs_labels else source
    if stage.trains:
      summary[name] = run_stage(config, Run(name, name), workdir, data)
    else:
      summary[name] = stage.run(config, data, workdir)
  baselines = {}
  for b in names(config.baselines):
    baseline = m.baseline(b)
    if baseline.compute is not None:
      data = labelled() if baseline.needs_labels else source
      baselines[b] = baseline.compute(config, data, workdir)
      if (examples := selection.train_examples(data)) is not None:
        baselines[b] = {**baselines[b], "train_examples": examples}
    else:
      for r in baseline.training_runs(config):
        data = labelled() if m.stage(r.stage).needs_labels else source
        baselines[b] = run_stage(config, r, workdir, data)
    echo(f"[baseline {b}] {per_class.brief(baselines[b])}")
  if baselines:
    summary["baselines"] = baselines
  if is_main():
    epath.Path(workdir, SUMMARY_JSON).write_text(json.dumps(summary, indent=2))
    from mae_jax import report  # pylint: disable=g-import-not-at-top  (matplotlib)
    report.write_report(workdir, summary, source.name, config.model.variant, m.titles(),
                        m.twins())
    if m.summarize is not None:
      m.summarize(config, workdir, summary, source)
  # Per-class entries stay in summary.json and results.md: thousands of lines at 1000 classes.
  echo(json.dumps(per_class.brief(summary), indent=2))
  return summary
