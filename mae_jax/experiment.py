"""Runs the stages a config names, then the baselines, and writes WORKDIR/summary.json.

Each stage works in WORKDIR/<stage>; a stage whose result.json exists is done and is
skipped, one with checkpoints resumes, so rerunning the same command continues a run.
"""

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath   # the workdir may be on GCS (gs://), where open() cannot go

from mae_jax import checkpoint, config_lib, pixels, tasks, train
from mae_jax.distributed import echo, is_main, main_first
from mae_jax.errors import ConfigError
from mae_jax.models import decode_variant
from mae_jax.models.attention import ATTENTION_KINDS, cudnn_runs
from mae_jax.parallel import PARALLEL_KINDS

SUMMARY_JSON = "summary.json"


def names(field: str) -> list[str]:
  return [s.strip() for s in field.split(",") if s.strip()]


def _runs(config: ml_collections.ConfigDict) -> list[tuple[str, str, str | None]]:
  """(folder name, stage, init_from override) of every training run the config asks for."""
  out = [(s, s, None) for s in names(config.stages) if s in config_lib.STAGES]
  out += [(b, b.removesuffix("_random_init"), "random") for b in names(config.baselines)
          if b != "raw_pixels"]
  return out


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
  for b in names(config.baselines):
    if b not in config_lib.BASELINES:
      raise ConfigError(f"config.baselines: unknown baseline {b!r}; known: "
                        f"{', '.join(config_lib.BASELINES)}")
  v = decode_variant(config.model.variant)
  if config.data.image_size <= 0 or config.data.image_size % v.patch_size:
    raise ConfigError(f"config.data.image_size={config.data.image_size} is not a positive multiple "
                      f"of the patch size {v.patch_size} of config.model.variant="
                      f"{config.model.variant!r}")
  if not 0.0 < config.model.mask_ratio < 1.0:
    raise ConfigError(f"config.model.mask_ratio must be in (0, 1), got {config.model.mask_ratio}")
  if config.parallel not in PARALLEL_KINDS:
    raise ConfigError(f"config.parallel must be one of {PARALLEL_KINDS}, got {config.parallel!r}")
  if config.parallel == "pmap" and jax.process_count() > 1:
    # pmap's state lives per process (host-local arrays), which Orbax cannot save collectively.
    raise ConfigError("config.parallel='pmap' runs in a single process only; multi-process jobs "
                      "use 'shard_map' (the default)")
  tasks.dtype_of(config.model.dtype)
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
  for _, stage, init_from in _runs(config):
    train.check_batch_size(config[stage], devices, f"config.{stage}")
    if stage != "pretrain":
      _check_init_from(config, stage, init_from or config[stage].init_from, workdir)


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
    if not checkpoint.is_export(init_from):
      raise ConfigError(f"{field} is empty, which means this run's pretrain export, but "
                        f"{init_from} has none: add pretrain to config.stages or set {field}")
  if not checkpoint.is_export(init_from):
    raise ConfigError(f"{field}={init_from!r} is not an exported encoder (no "
                      f"{checkpoint.MODEL_JSON} there)")
  exported = checkpoint.load_description(init_from)
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


def run_stage(config: ml_collections.ConfigDict, name: str, stage: str, workdir: str,
              source: Any, init_from: str | None = None) -> dict[str, Any]:
  """Runs `stage` (pretrain | linprobe | finetune) in WORKDIR/`name`, or returns its result."""
  stage_dir = os.path.join(workdir, name)
  done = os.path.join(stage_dir, train.RESULT_JSON)
  if epath.Path(done).exists():
    echo(f"[{name}] already finished: {done}")
    return json.loads(epath.Path(done).read_text())
  cfg = config[stage]
  if stage == "pretrain":
    task = tasks.pretrain_task(config)
  else:
    if init_from is not None:
      cfg = ml_collections.ConfigDict(cfg.to_dict())
      cfg.init_from = init_from
      config = ml_collections.ConfigDict(config.to_dict())
      config[stage] = cfg
    task = tasks.classifier_task(config, stage, source.num_classes, workdir)
  return train.train_stage(task, cfg, config.data, source, stage_dir,
                           seed=_stage_seed(config.seed, name), parallel=config.parallel)


def visualize_stage(config: ml_collections.ConfigDict, workdir: str, source: Any
                    ) -> dict[str, Any]:
  """Reconstruction grid of config.visualize.checkpoint (default: this run's pretrain stage)."""
  from mae_jax import visualize  # pylint: disable=g-import-not-at-top
  ckpt = config.visualize.checkpoint or os.path.join(workdir, "pretrain", "checkpoints")
  if not is_main():
    # Orbax reads a checkpoint with every process of a multi-process job (process 0 alone
    # would wait for the others forever): the others take part in the load, nothing more.
    visualize.load_mae(ckpt, config)
    return {}
  result = visualize.run_stage(config, ckpt, os.path.join(workdir, "visualize"), source)
  echo(f"[visualize] {result['png']}")
  return result


def raw_pixels_baseline(config: ml_collections.ConfigDict, source: Any) -> dict[str, Any]:
  """Logistic regression on the eval-preprocessed pixels: what no representation learning gets."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  import threadpoolctl  # pylint: disable=g-import-not-at-top  (scikit-learn depends on it)
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
  # seen to make the fit 10x slower (5 s -> 60 s) beside other busy processes.
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    clf.fit(x_train, y_train)
  proba = clf.predict_proba(x_test)
  top5 = np.argsort(-proba, axis=1)[:, :5]
  top5_hit = (clf.classes_[top5] == y_test[:, None]).any(axis=1)
  return {"top1": 100 * float(np.mean(clf.predict(x_test) == y_test)),
          "top5": 100 * float(np.mean(top5_hit)), "features": int(x_train.shape[1])}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs config.stages then config.baselines in `workdir`; returns and writes the summary."""
  validate(config, workdir)
  from mae_jax import data  # pylint: disable=g-import-not-at-top

  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  if is_main():
    epath.Path(workdir, "config.json").write_text(config.to_json_best_effort(indent=2))
  source = main_first(lambda: data.get_source(config.data.dataset, config.data.data_dir or None),
                      "dataset ready")
  echo(f"dataset {source.name}: {source.split_sizes}, {source.num_classes} classes; "
       f"{jax.device_count()} devices in {jax.process_count()} process(es): {jax.devices()}")
  summary: dict[str, Any] = {}
  for stage in names(config.stages):
    if stage == "visualize":
      summary[stage] = visualize_stage(config, workdir, source)
    else:
      summary[stage] = run_stage(config, stage, stage, workdir, source)
  baselines = {}
  for b in names(config.baselines):
    if b == "raw_pixels":
      baselines[b] = raw_pixels_baseline(config, source)
    else:
      stage = b.removesuffix("_random_init")
      baselines[b] = run_stage(config, os.path.join("baselines", b), stage, workdir, source,
                               init_from="random")
    echo(f"[baseline {b}] {baselines[b]}")
  if baselines:
    summary["baselines"] = baselines
  if is_main():
    epath.Path(workdir, SUMMARY_JSON).write_text(json.dumps(summary, indent=2))
    from mae_jax import report  # pylint: disable=g-import-not-at-top  (matplotlib)
    report.write_report(workdir, summary, source.name, config.model.variant)
  echo(json.dumps(summary, indent=2))
  return summary
