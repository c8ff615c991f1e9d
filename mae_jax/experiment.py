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

from mae_jax import config_lib, tasks, train
from mae_jax.distributed import echo, is_main, main_first
from mae_jax.models import decode_variant
from mae_jax.parallel import PARALLEL_KINDS

SUMMARY_JSON = "summary.json"


def names(field: str) -> list[str]:
  return [s.strip() for s in field.split(",") if s.strip()]


def validate(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before anything compiles."""
  for s in names(config.stages):
    if s not in config_lib.STAGES:
      raise ValueError(f"config.stages: unknown stage {s!r}; known: {', '.join(config_lib.STAGES)}")
  for b in names(config.baselines):
    if b not in config_lib.BASELINES:
      raise ValueError(f"config.baselines: unknown baseline {b!r}; known: "
                       f"{', '.join(config_lib.BASELINES)}")
  v = decode_variant(config.model.variant)
  if config.data.image_size % v.patch_size:
    raise ValueError(f"config.data.image_size={config.data.image_size} is not divisible by the "
                     f"patch size {v.patch_size} of config.model.variant={config.model.variant!r}")
  if not 0.0 < config.model.mask_ratio < 1.0:
    raise ValueError(f"config.model.mask_ratio must be in (0, 1), got {config.model.mask_ratio}")
  if config.parallel not in PARALLEL_KINDS:
    raise ValueError(f"config.parallel must be one of {PARALLEL_KINDS}, got {config.parallel!r}")
  if config.parallel == "pmap" and jax.process_count() > 1:
    # pmap's state lives per process (host-local arrays), which Orbax cannot save collectively.
    raise ValueError("config.parallel='pmap' runs in a single process only; multi-process jobs "
                     "use 'shard_map' (the default)")
  tasks.dtype_of(config.model.dtype)


def _stage_seed(seed: int, name: str) -> int:
  # Distinct, fixed streams per stage, so a baseline never reuses the stage's data order.
  return seed * 1000 + sum(map(ord, name))


def run_stage(config: ml_collections.ConfigDict, name: str, stage: str, workdir: str,
              source: Any, init_from: str | None = None) -> dict[str, Any]:
  """Runs `stage` ("pretrain" | "linprobe" | "finetune") in WORKDIR/`name`, or returns its result."""
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


def raw_pixels_baseline(config: ml_collections.ConfigDict, source: Any) -> dict[str, Any]:
  """Logistic regression on the eval-preprocessed pixels: what no representation learning gets."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from mae_jax import data  # pylint: disable=g-import-not-at-top

  def arrays(split):
    xs, ys = [], []
    for b in data.eval_batches(source, split, batch_size=config.data.eval_batch_size,
                               image_size=config.data.image_size,
                               crop_ratio=config.data.eval_crop_ratio,
                               mean=tuple(config.data.mean), std=tuple(config.data.std)):
      keep = b["mask"] > 0
      xs.append(b["image"][keep].reshape(keep.sum(), -1))
      ys.append(b["label"][keep])
    return np.concatenate(xs), np.concatenate(ys)

  x_train, y_train = arrays(source.train_split)
  x_test, y_test = arrays(source.eval_split)
  clf = LogisticRegression(C=config.raw_pixels.C, max_iter=config.raw_pixels.max_iter)
  clf.fit(x_train, y_train)
  proba = clf.predict_proba(x_test)
  top5 = np.argsort(-proba, axis=1)[:, :5]
  top5_hit = (clf.classes_[top5] == y_test[:, None]).any(axis=1)
  return {"top1": 100 * float(np.mean(clf.predict(x_test) == y_test)),
          "top5": 100 * float(np.mean(top5_hit)), "features": int(x_train.shape[1])}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs config.stages then config.baselines in `workdir`; returns and writes the summary."""
  validate(config)
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
  echo(json.dumps(summary, indent=2))
  return summary
