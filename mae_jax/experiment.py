"""Runs the stages a config names, then the baselines, and writes WORKDIR/summary.json.

Each stage works in WORKDIR/<stage>; a stage whose result.json exists is done and is
skipped, one with checkpoints resumes, so rerunning the same command continues a run.
"""

import dataclasses
import json
import math
import os
from typing import Any

import jax
import ml_collections
from etils import epath   # the workdir may be on GCS (gs://), where open() cannot go

from mae_jax import config_lib, masking, pixels, tasks, train, weights
from mae_jax.distributed import echo, is_main, main_first
from mae_jax.checkpoint import MODEL_JSON
from mae_jax.errors import ConfigError
from mae_jax.models import decode_variant
from mae_jax.models.attention import ATTENTION_KINDS, cudnn_runs
from mae_jax.parallel import PARALLEL_KINDS

SUMMARY_JSON = "summary.json"
DTYPES = ("float32", "bfloat16", "float16")
CACHE_MODES = ("auto", "memory", "stream")
UNLABELED_PREFIX = "images:"   # data/images.py; the package itself would import TensorFlow
# Stages and untrained baselines of series datasets (forecast_task.py); pretrain serves both.
SERIES_STAGES = ("forecast", "persistence")
# Likewise for tables (impute_task.py, impute_baselines.py) and volumes (segment3d_task.py).
TABLE_STAGES = ("impute",) + config_lib.IMPUTER_BASELINES
VOLUME_STAGES = ("segment3d",)


def names(field: str) -> list[str]:
  return [s.strip() for s in field.split(",") if s.strip()]


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run: a stage in WORKDIR/<folder>, with config fields overridden."""
  folder: str
  stage: str
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def init_from(self) -> str | None:
    return self.overrides.get(f"{self.stage}.init_from")


# Baselines computed without training (tasks.raw_pixels, forecast_task.persistence).
UNTRAINED_BASELINES = ("raw_pixels", "persistence") + config_lib.IMPUTER_BASELINES


def baseline_runs(config: ml_collections.ConfigDict, b: str) -> list[Run]:
  """The training runs of baseline `b`, in order; its result is the last one's."""
  folder = os.path.join("baselines", b)
  if b.endswith("_random_init"):
    stage = b.removesuffix("_random_init")
    return [Run(folder, stage, {f"{stage}.init_from": "random"})]
  if b in config_lib.FORECASTER_BASELINES:
    return [Run(folder, "forecast", {"forecast.model": b, "forecast.init_from": "random"})]
  if b == "patchtst":
    # The same encoder pretrained with PatchTST's masking (removed patches zeroed, kept in the
    # sequence), then the forecast stage from it.
    pretrain = os.path.join(folder, "pretrain")
    return [Run(pretrain, "pretrain", {"model.encoder_mask_tokens": True,
                                       "model.mask_value": "zero"}),
            Run(folder, "forecast", {"forecast.model": "transformer",
                                     "forecast.init_from": PRODUCED_BY + pretrain})]
  return []


# An init_from that names the export of an earlier run of the same job (relative to WORKDIR).
PRODUCED_BY = "workdir:"


def _runs(config: ml_collections.ConfigDict) -> list[Run]:
  """Every training run the config asks for: its stages, then its baselines'."""
  out = [Run(s, s) for s in names(config.stages) if s in config_lib.STAGES]
  for b in names(config.baselines):
    out += baseline_runs(config, b)
  return out


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


def validate(config: ml_collections.ConfigDict, workdir: str = "") -> None:
  """Refuses a config that cannot run, naming the field and the reason, before anything compiles."""
  for s in names(config.stages):
    if s not in config_lib.STAGES + config_lib.EXTRA_STAGES:
      raise ConfigError(f"config.stages: unknown stage {s!r}; known: "
                        f"{', '.join(config_lib.STAGES + config_lib.EXTRA_STAGES)}")
  if "visualize" in names(config.stages) and not config.visualize.checkpoint:
    if "pretrain" not in names(config.stages) and not epath.Path(
        workdir, "pretrain", "checkpoints").exists():
      raise ConfigError("config.stages has visualize but neither pretrain nor "
                        "config.visualize.checkpoint: there is no MAE to reconstruct with")
  _check_labels(config)
  d = config.data
  if d.tfds_file_format not in ("", "tfrecord", "array_record"):
    raise ConfigError(f"config.data.tfds_file_format must be '', 'tfrecord' or 'array_record', "
                      f"got {d.tfds_file_format!r}")
  if d.cache not in CACHE_MODES:
    raise ConfigError(f"config.data.cache must be one of {CACHE_MODES}, got {d.cache!r}")
  if not 0 <= d.holdout < 1 or d.holdout_max < 0:
    raise ConfigError(f"config.data.holdout must be in [0, 1) and holdout_max >= 0, got "
                      f"{d.holdout} and {d.holdout_max}")
  for b in names(config.baselines):
    if b not in config_lib.BASELINES:
      raise ConfigError(f"config.baselines: unknown baseline {b!r}; known: "
                        f"{', '.join(config_lib.BASELINES)}")
  v = decode_variant(config.model.variant)
  if not 0.0 < config.model.mask_ratio < 1.0:
    raise ConfigError(f"config.model.mask_ratio must be in (0, 1), got {config.model.mask_ratio}")
  if config.model.mask_value not in ("learned", "zero"):
    raise ConfigError(f"config.model.mask_value must be 'learned' or 'zero', got "
                      f"{config.model.mask_value!r}")
  kind = config_lib.modality(config)
  if kind == "series":
    _validate_series(config, v)
  elif kind == "table":
    _validate_table(config, v)
  elif kind == "volume":
    _validate_volume(config, v)
  elif config.model.patch_stride:
    raise ConfigError(f"config.model.patch_stride={config.model.patch_stride}: overlapping "
                      f"patches are for series; images take 0")
  else:
    if d.image_size <= 0 or d.image_size % v.patch_size:
      raise ConfigError(f"config.data.image_size={d.image_size} is not a positive multiple "
                        f"of the patch size {v.patch_size} of config.model.variant="
                        f"{config.model.variant!r}")
    side = d.image_size // v.patch_size
    for ratio in {config.model.mask_ratio, config.visualize.mask_ratio or config.model.mask_ratio}:
      error = masking.sampling_error(config.model.mask_sampling, (side, side), ratio)
      if error:
        raise ConfigError(f"config.model.mask_sampling: {error}")
  if any(r.stage == "segment" for r in _runs(config)):
    _validate_segment(config.segment, v)
  for stage in {r.stage for r in _runs(config)}:
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
  validate_visualize(config)
  if config.data.batch_layout not in pixels.LAYOUTS:
    raise ConfigError(f"config.data.batch_layout must be one of {pixels.LAYOUTS}, got "
                      f"{config.data.batch_layout!r}")
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
  for r in _runs(config):
    check_batch_size(config[r.stage], devices, f"config.{r.stage}")
    init_from = r.init_from or config[r.stage].init_from
    if r.stage not in ("pretrain", "impute") and not init_from.startswith(PRODUCED_BY) and not (
        r.stage == "forecast" and r.overrides.get("forecast.model", config.forecast.model)
        != "transformer"):
      _check_init_from(config, r.stage, init_from, workdir)


def _validate_table(config: ml_collections.ConfigDict, v: Any) -> None:
  """A table: one token per entry, so patches of one value."""
  if v.patch_size != 1:
    raise ConfigError(f"config.model.variant={config.model.variant!r}: a table's tokens are "
                      f"single entries, so the patch size must be 1 (e.g. 'remasker/1')")
  if config.model.mask_sampling != "random" or config.model.encoder_mask_tokens:
    raise ConfigError("config.model: tables take mask_sampling 'random' and no encoder mask "
                      "tokens (missing entries never reach the encoder)")


def _validate_volume(config: ml_collections.ConfigDict, v: Any) -> None:
  """Volumes: roi crops cut into 3-D patches, random masking; the UNETR's skips."""
  d, s = config.data, config.segment3d
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
  if d.crops_per_volume < 1 or min(d.pos_neg) < 0 or sum(d.pos_neg) <= 0:
    raise ConfigError(f"config.data.crops_per_volume={d.crops_per_volume} must be >= 1 and "
                      f"config.data.pos_neg={tuple(d.pos_neg)} non-negative, not both 0")
  if not 0.0 <= s.overlap < 1.0 or s.blend not in ("gaussian", "constant"):
    raise ConfigError(f"config.segment3d.overlap={s.overlap} must be in [0, 1) and blend "
                      f"'gaussian' or 'constant', got {s.blend!r}")
  if s.conv not in ("auto", "xla", "slices"):
    raise ConfigError(f"config.segment3d.conv must be 'auto', 'xla' or 'slices', got {s.conv!r}")
  if any(r.stage == "segment3d" for r in _runs(config)):
    levels = math.log2(v.patch_size)
    blocks = tuple(s.feature_blocks)
    if levels != int(levels) or len(blocks) != int(levels) or blocks[-1] != v.depth or any(
        not 1 <= b <= v.depth for b in blocks):
      raise ConfigError(
          f"config.segment3d.feature_blocks={blocks}: a UNETR on patches of {v.patch_size} "
          f"(a power of 2) takes log2(patch) = {levels:g} blocks of the {v.depth}-block encoder, "
          f"the skips then the last block ({v.depth}), e.g. (3, 6, 9, 12) for 16")


def _validate_series(config: ml_collections.ConfigDict, v: Any) -> None:
  """A series dataset: 1-D patches of the look-back window, random masking."""
  from mae_jax.models.forecaster import KINDS  # pylint: disable=g-import-not-at-top
  d = config.data
  if d.lookback < v.patch_size:
    raise ConfigError(f"config.data.lookback={d.lookback} is shorter than the patch length "
                      f"{v.patch_size} of config.model.variant={config.model.variant!r}")
  if not 0 <= config.model.patch_stride <= v.patch_size:
    raise ConfigError(f"config.model.patch_stride={config.model.patch_stride} must be in [0, "
                      f"{v.patch_size}] (the patch length; 0 = the patch length)")
  if config.model.mask_sampling != "random":
    raise ConfigError(f"config.model.mask_sampling={config.model.mask_sampling!r}: series "
                      f"take 'random' (block and grid are 2-D samplings)")
  if config.forecast.model not in KINDS:
    raise ConfigError(f"config.forecast.model must be one of {', '.join(KINDS)}, got "
                      f"{config.forecast.model!r}")
  if config.forecast.eval_split not in ("val", "test"):
    raise ConfigError(f"config.forecast.eval_split must be 'val' or 'test', got "
                      f"{config.forecast.eval_split!r}")


def _validate_segment(seg: ml_collections.ConfigDict, v: Any) -> None:
  """config.segment, when the segment stage (or its baseline) runs."""
  if seg.neck not in ("feature2pyramid", "simple"):
    raise ConfigError(f"config.segment.neck must be 'feature2pyramid' or 'simple', got "
                      f"{seg.neck!r}")
  if seg.neck == "feature2pyramid" and (len(seg.feature_blocks) != 4 or not all(
      1 <= b <= v.depth for b in seg.feature_blocks)):
    raise ConfigError(f"config.segment.feature_blocks={tuple(seg.feature_blocks)}: four block "
                      f"numbers in 1..{v.depth} (the pyramid's x4, x2, x1, x0.5 levels)")
  if seg.eval_mode not in ("whole", "slide") or (seg.eval_mode == "slide" and
                                                  not 0 < seg.eval_stride <= seg.eval_size):
    raise ConfigError(f"config.segment.eval_mode must be 'whole' or 'slide' (with 0 < "
                      f"eval_stride <= eval_size), got {seg.eval_mode!r} (stride "
                      f"{seg.eval_stride}, size {seg.eval_size})")
  if seg.crop_size % v.patch_size or seg.eval_size % v.patch_size:
    raise ConfigError(f"config.segment.crop_size={seg.crop_size} and eval_size={seg.eval_size} "
                      f"must be multiples of the patch size {v.patch_size}")


def _check_labels(config: ml_collections.ConfigDict) -> None:
  """An unlabeled dataset ("images:") serves the stages that need no labels, and only those; a
  segmentation dataset has label maps (the segment stage), a classification one labels."""
  runs = [(r.folder, r.stage) for r in _runs(config)]
  runs += [(b, b) for b in names(config.baselines) if b in UNTRAINED_BASELINES]
  modality = config_lib.modality(config)
  allowed = {"series": SERIES_STAGES, "table": TABLE_STAGES,
             "volume": VOLUME_STAGES}.get(modality, ())
  # Tables train their MAE in the impute stage itself: no pretrain there.
  wrong = [name for name, stage in runs if (stage != "pretrain" or modality == "table") and (
      stage not in allowed if allowed else stage in SERIES_STAGES + TABLE_STAGES + VOLUME_STAGES)]
  if wrong:
    kind = {"series": "series (pretrain, forecast)", "table": "a table (impute)",
            "volume": "volumes (pretrain, segment3d)"}.get(modality, "images")
    raise ConfigError(f"config.data.dataset={config.data.dataset!r} holds {kind}, but "
                      f"config.stages/baselines ask for {', '.join(wrong)}")
  if allowed:
    return
  dense = config_lib.is_segmentation(config.data.dataset)
  wrong = [name for name, stage in runs
           if tasks.needs_labels(stage) and (stage == "segment") != dense]
  if wrong and not config.data.dataset.startswith(UNLABELED_PREFIX):
    kind = "label maps (segment)" if dense else "image labels (linprobe, finetune, raw_pixels)"
    raise ConfigError(f"config.data.dataset={config.data.dataset!r} has {kind}, but "
                      f"config.stages/baselines ask for {', '.join(wrong)}")
  if not config.data.dataset.startswith(UNLABELED_PREFIX):
    return
  labeled = [r.folder for r in _runs(config) if tasks.needs_labels(r.stage)]
  labeled += [b for b in names(config.baselines) if b == "raw_pixels"]
  if labeled:
    raise ConfigError(f"config.data.dataset={config.data.dataset!r} has no labels: it serves "
                      f"pretrain and visualize only, but config.stages/baselines ask for "
                      f"{', '.join(labeled)} (use an imagefolder: or TFDS dataset for those)")


def validate_visualize(config: ml_collections.ConfigDict) -> None:
  """The fields the visualize stage (and mae-jax-visualize) reads beyond the model and data."""
  if config.visualize.norm_pix_loss.lower() not in ("", "true", "false"):
    raise ConfigError(f"config.visualize.norm_pix_loss must be '', 'true' or 'false', got "
                      f"{config.visualize.norm_pix_loss!r}")
  unknown = [s for s in config.visualize.samplings.split(",") if s and s not in
             masking.MASK_SAMPLINGS]
  if unknown:
    raise ConfigError(f"config.visualize.samplings: unknown {', '.join(unknown)}; a comma-"
                      f"separated subset of {','.join(masking.MASK_SAMPLINGS)}, or ''")


def check_batch_size(cfg: ml_collections.ConfigDict, devices: int, where: str) -> None:
  """A stage's global batch must split evenly over the devices, then into grad_accum_steps."""
  if cfg.batch_size <= 0 or cfg.batch_size % devices:
    raise ConfigError(f"{where}.batch_size={cfg.batch_size} (the global batch) is not a "
                      f"positive multiple of the {devices} devices")
  if cfg.grad_accum_steps < 1 or (cfg.batch_size // devices) % cfg.grad_accum_steps:
    raise ConfigError(f"{where}.grad_accum_steps={cfg.grad_accum_steps} does not divide "
                      f"the per-device batch {cfg.batch_size // devices}")


def validate_data(config: ml_collections.ConfigDict, source: Any) -> None:
  """What only the dataset can tell: streaming has a random-access store to read, and every
  training stage gets one full batch per epoch."""
  if config_lib.modality(config) == "table":
    rows = len(source.train)
    for r in _runs(config):
      if config[r.stage].batch_size > rows:
        raise ConfigError(f"config.{r.stage}.batch_size={config[r.stage].batch_size} exceeds "
                          f"the {rows} training rows of {source.name}")
    return
  if config_lib.modality(config) == "volume":
    if not source.val and any(r.stage == "segment3d" for r in _runs(config)):
      raise ConfigError(f"{source.name} has no validation volumes to score segment3d on")
    if config.data.eval_batch_size % jax.process_count():
      raise ConfigError(f"config.data.eval_batch_size={config.data.eval_batch_size} is not a "
                        f"multiple of the {jax.process_count()} processes")
    return
  if config_lib.modality(config) == "series":
    windows = source.num_windows("train")
    for r in _runs(config):
      if config[r.stage].batch_size > windows:
        raise ConfigError(f"config.{r.stage}.batch_size={config[r.stage].batch_size} exceeds "
                          f"the {windows} training windows of {source.name}")
    return
  if config.data.cache == "stream" and source.random_access is None:
    raise ConfigError(f"config.data.cache='stream' needs a dataset read by index: imagefolder:, "
                      f"images:, or TFDS prepared as array_record (config.data.tfds_file_format="
                      f"'array_record' in a fresh data_dir); {source.name} is not: set 'auto'")
  examples = source.split_sizes[source.train_split]
  for stage in {r.stage for r in _runs(config)}:
    if config[stage].batch_size > examples:
      raise ConfigError(f"config.{stage}.batch_size={config[stage].batch_size} exceeds the "
                        f"{examples} training examples of {source.name}")


def _check_init_from(config: ml_collections.ConfigDict, stage: str, init_from: str,
                     workdir: str) -> None:
  """The encoder a classifier stage starts from must exist and have the config's architecture."""
  if init_from == "random":
    return
  field = f"config.{stage}.init_from"
  if not init_from:
    if "pretrain" in names(config.stages):
      return                       # this run's pretrain stage writes it first
    init_from = os.path.join(workdir, "pretrain", "export")
    if not weights.is_export(init_from):
      raise ConfigError(f"{field} is empty, which means this run's pretrain export, but "
                        f"{init_from} has none: add pretrain to config.stages or set {field}")
  if not weights.is_export(init_from):
    raise ConfigError(f"{field}={init_from!r} is not an exported encoder (no "
                      f"{MODEL_JSON} there)")
  exported = weights.load_description(init_from)
  expected = tasks.model_description(config)
  keys = ("width", "depth", "num_heads", "patch_size", "mlp_ratio")
  wrong = [f"{k} {exported.get(k)} vs {expected[k]}" for k in keys
           if exported.get(k) != expected[k]]
  if wrong:
    raise ConfigError(f"{field}={init_from!r} does not fit config.model.variant="
                      f"{config.model.variant!r}: {', '.join(wrong)} (export vs config)")


def _stage_seed(seed: int, name: str) -> int:
  # Distinct, fixed streams per stage, so a baseline never reuses the stage's data order.
  return seed * 1000 + sum(map(ord, name))


def run_stage(config: ml_collections.ConfigDict, run: Run, workdir: str, source: Any
              ) -> dict[str, Any]:
  """Trains `run` in WORKDIR/<run.folder>, or returns its result if it finished."""
  stage_dir = os.path.join(workdir, run.folder)
  done = os.path.join(stage_dir, train.RESULT_JSON)
  if epath.Path(done).exists():
    echo(f"[{run.folder}] already finished: {done}")
    return json.loads(epath.Path(done).read_text())
  config = with_overrides(config, run.overrides, workdir)
  task = tasks.make_task(config, run.stage, source, workdir)
  return train.train_stage(task, config[run.stage], stage_dir,
                           seed=_stage_seed(config.seed, run.folder), parallel=config.parallel)


def visualize_stage(config: ml_collections.ConfigDict, workdir: str, source: Any
                    ) -> dict[str, Any]:
  """Reconstruction grid of config.visualize.checkpoint (default: this run's pretrain stage)."""
  ckpt = config.visualize.checkpoint or os.path.join(workdir, "pretrain", "checkpoints")
  if not is_main():
    # Orbax reads a checkpoint with every process of a multi-process job (process 0 alone
    # would wait for the others forever): the others take part in the load, nothing more.
    tasks.load_mae(config, ckpt)
    return {}
  result = tasks.reconstructions(config, ckpt, os.path.join(workdir, "visualize"), source)
  echo(f"[visualize] {result['png']}")
  return result


def load_source(config: ml_collections.ConfigDict) -> Any:
  """config.data's dataset: an image Source (data/sources.py) or a Series (data/series.py)."""
  if config_lib.modality(config) == "table":
    from mae_jax import impute_task  # pylint: disable=g-import-not-at-top
    return impute_task.table_source(config)
  if config_lib.modality(config) == "series":
    from mae_jax import forecast_task  # pylint: disable=g-import-not-at-top
    return forecast_task.series_source(config)
  if config_lib.modality(config) == "volume":
    from mae_jax import segment3d_task  # pylint: disable=g-import-not-at-top
    return segment3d_task.volume_source(config)
  from mae_jax import data  # pylint: disable=g-import-not-at-top
  return data.source_for(config.data)


def describe(source: Any) -> str:
  if hasattr(source, "test_removed"):
    return (f"{len(source.train)} training / {len(source.test)} test rows, "
            f"{len(source.columns)} columns, {int(source.test_removed.sum())} test entries removed")
  if hasattr(source, "class_names"):
    return (f"{len(source.train)} training / {len(source.val)} validation volumes, "
            f"{source.num_classes} classes ({', '.join(source.class_names)}), "
            f"{source.in_channels} channel(s)")
  if hasattr(source, "borders"):
    windows = {s: source.num_windows(s) for s in source.borders}
    return f"{len(source.variables)} variables, windows {windows}"
  return f"{source.split_sizes}, {source.num_classes} classes"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs config.stages then config.baselines in `workdir`; returns and writes the summary."""
  validate(config, workdir)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  if is_main():
    epath.Path(workdir, "config.json").write_text(config.to_json_best_effort(indent=2))
  source = main_first(lambda: load_source(config), "dataset ready")
  validate_data(config, source)
  echo(f"dataset {source.name}: {describe(source)}; {jax.device_count()} devices in "
       f"{jax.process_count()} process(es): {jax.devices()}")
  summary: dict[str, Any] = {}
  for stage in names(config.stages):
    if stage == "visualize":
      summary[stage] = visualize_stage(config, workdir, source)
    else:
      summary[stage] = run_stage(config, Run(stage, stage), workdir, source)
  baselines = {}
  for b in names(config.baselines):
    if b == "raw_pixels":
      baselines[b] = tasks.raw_pixels(config, source)
    elif b == "persistence":
      from mae_jax import forecast_task  # pylint: disable=g-import-not-at-top
      baselines[b] = forecast_task.persistence(config, source)
    elif b in config_lib.IMPUTER_BASELINES:
      from mae_jax import impute_task  # pylint: disable=g-import-not-at-top
      baselines[b] = impute_task.baseline(config, source, b, workdir)
    else:
      for r in baseline_runs(config, b):
        baselines[b] = run_stage(config, r, workdir, source)
    echo(f"[baseline {b}] {baselines[b]}")
  if baselines:
    summary["baselines"] = baselines
  if is_main():
    epath.Path(workdir, SUMMARY_JSON).write_text(json.dumps(summary, indent=2))
    from mae_jax import report  # pylint: disable=g-import-not-at-top  (matplotlib)
    report.write_report(workdir, summary, source.name, config.model.variant)
    if config_lib.modality(config) == "series":
      from mae_jax import forecast_task  # pylint: disable=g-import-not-at-top
      forecast_task.compare_plot(config, workdir, summary, source)
  echo(json.dumps(summary, indent=2))
  return summary
