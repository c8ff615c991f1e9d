"""The one training loop, shared by pretrain, linprobe and finetune.

`make_train_step` builds the per-device step (pure: (state, batch) -> (state,
metrics)); `train_stage` owns everything around it: data, checkpoints, logging,
evaluation. Importing this module does not import TensorFlow.
"""

import json
import math
import os
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from etils import epath   # the workdir may be on GCS (gs://)

from mae_jax import checkpoint, optim, preemption
from mae_jax.checkpoint import StateCheckpoints
from mae_jax.distributed import echo, is_main
from mae_jax.errors import ConfigError, NonFiniteError, Preempted
from mae_jax.metrics import MetricWriter, format_duration
from mae_jax.parallel import DataParallel, device_index, pmean, psum
from mae_jax.tasks import Task

RESULT_JSON = "result.json"


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  model_state: dict[str, Any]   # e.g. BatchNorm statistics; {} for most models
  rng: jax.Array                # raw uint32 key; step keys are fold_in(rng, step)


def make_train_step(task: Task, tx: optax.GradientTransformation, grad_accum_steps: int = 1):
  """Per-device step: gradients on this device's shard, `pmean` over the data axis, one update.

  With `grad_accum_steps` > 1 the shard is split into that many micro-batches whose
  gradients are averaged before the single update (a larger effective batch on small memory).
  """

  def grads_of(params, model_state, batch, rng, ids):
    grad_fn = jax.value_and_grad(task.loss_fn, has_aux=True)
    (_, (model_state, metrics)), grads = grad_fn(params, model_state, batch, rng, ids)
    return grads, model_state, metrics

  def step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict]:
    rng = jax.random.fold_in(state.rng, state.step)
    local = batch["image"].shape[0]
    ids = device_index() * local + jnp.arange(local)
    if grad_accum_steps == 1:
      grads, model_state, metrics = grads_of(state.params, state.model_state, batch, rng, ids)
    else:
      split = lambda x: x.reshape((grad_accum_steps, -1) + x.shape[1:])  # noqa: E731

      def body(carry, xs):
        acc, model_state = carry
        micro, micro_ids = xs
        grads, model_state, metrics = grads_of(state.params, model_state, micro, rng, micro_ids)
        return (jax.tree.map(jnp.add, acc, grads), model_state), metrics

      zeros = jax.tree.map(jnp.zeros_like, state.params)
      (grads, model_state), metrics = jax.lax.scan(
          body, (zeros, state.model_state), (jax.tree.map(split, batch), split(ids)))
      grads = jax.tree.map(lambda g: g / grad_accum_steps, grads)
      metrics = jax.tree.map(jnp.mean, metrics)
    grads, metrics, model_state = pmean((grads, metrics, model_state))
    metrics["grad_norm"] = optim.global_norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         model_state=model_state), metrics

  return step


def make_eval_step(task: Task):
  def step(state: TrainState, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return psum(task.eval_fn(state.params, state.model_state, batch))
  return step


def create_state(task: Task, tx_for: Any, sample: jax.Array, seed: int
                 ) -> tuple[TrainState, optax.GradientTransformation]:
  """Initial state (host arrays) and the optimizer built for its parameters."""
  rng = jax.random.PRNGKey(seed)
  variables = task.init(jax.random.fold_in(rng, 0), sample)
  params = variables.pop("params")
  tx = tx_for(params)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                     model_state=variables, rng=jax.random.fold_in(rng, 1))
  return jax.device_get(state), tx


def stage_steps(cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> tuple[int, int]:
  """(total steps, warmup steps) from a stage config's epochs, or its num_steps override."""
  total = cfg.num_steps if cfg.num_steps > 0 else int(round(cfg.num_epochs * steps_per_epoch))
  return max(total, 1), int(round(cfg.warmup_epochs * steps_per_epoch))


def check_batch_size(cfg: ml_collections.ConfigDict, devices: int, where: str) -> None:
  """A stage's global batch must split evenly over the devices, then into grad_accum_steps."""
  if cfg.batch_size <= 0 or cfg.batch_size % devices:
    raise ConfigError(f"{where}.batch_size={cfg.batch_size} (the global batch) is not a "
                      f"positive multiple of the {devices} devices")
  if cfg.grad_accum_steps < 1 or (cfg.batch_size // devices) % cfg.grad_accum_steps:
    raise ConfigError(f"{where}.grad_accum_steps={cfg.grad_accum_steps} does not divide "
                      f"the per-device batch {cfg.batch_size // devices}")


def train_stage(task: Task, cfg: ml_collections.ConfigDict, data_cfg: ml_collections.ConfigDict,
                source: Any, workdir: str, seed: int, parallel: str = "shard_map",
                ) -> dict[str, Any]:
  """Trains `task` as `cfg` (a config.<stage>) says, resuming from workdir/checkpoints.

  Returns the stage's final metrics (also written to workdir/result.json).
  """
  from mae_jax import data  # pylint: disable=g-import-not-at-top  (TensorFlow lives there)

  par = DataParallel(parallel)
  batch = cfg.batch_size
  check_batch_size(cfg, par.num_devices, f"config.{task.name}")
  spe = data.num_train_steps_per_epoch(source, source.train_split, batch)
  if spe < 1:
    raise ConfigError(f"batch_size={batch} exceeds the {source.split_sizes[source.train_split]} "
                     f"training examples of {source.name}")
  total, warmup = stage_steps(cfg, spe)
  schedule = optim.warmup_cosine(optim.scaled_lr(cfg.base_lr, batch), warmup, total, cfg.min_lr)
  size = data_cfg.image_size
  host_state, tx = create_state(task, lambda p: task.make_tx(schedule, p),
                                jnp.zeros((1, size, size, 3), jnp.float32), seed)
  state = par.put_state(host_state)

  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  ckpts = StateCheckpoints(os.path.join(workdir, "checkpoints"), cfg.keep_checkpoints,
                           cfg.checkpoint_every_steps)
  start = 0
  log = lambda msg: echo(f"[{task.name}] {msg}")  # noqa: E731
  restored = ckpts.restore_latest_good(par.unreplicate(state), log)
  if restored is not None:
    state = par.put_state(jax.device_get(restored)) if par.kind == "pmap" else restored
    start = int(jax.device_get(par.unreplicate(state).step))
    log(f"resuming from step {start} in {ckpts.manager.directory}")

  train_step = par.wrap(make_train_step(task, tx, cfg.grad_accum_steps), donate_state=True)
  eval_step = par.wrap(make_eval_step(task)) if task.eval_fn is not None else None
  procs, pid = jax.process_count(), jax.process_index()
  batches = data.train_batches(
      source, source.train_split, batch_size=batch // procs, image_size=size,
      crop_scale=tuple(cfg.crop_scale), crop_ratio=tuple(cfg.crop_ratio), hflip=cfg.hflip,
      mean=tuple(data_cfg.mean), std=tuple(data_cfg.std), seed=seed, start_step=start,
      num_shards=procs, shard_index=pid, options=data.Augment.from_config(cfg),
      layout=data_cfg.batch_layout)

  def evaluate() -> dict[str, float]:
    # Opening a dataset must not overlap a checkpoint write: TFDS's mock_data (tests) swaps the
    # file system out globally while it builds one, and the write would land in its sandbox.
    ckpts.wait()
    sums: dict[str, float] = {}
    for b in data.eval_batches(source, source.eval_split,
                               batch_size=data_cfg.eval_batch_size // procs, image_size=size,
                               crop_ratio=data_cfg.eval_crop_ratio, num_shards=procs,
                               shard_index=pid, layout=data_cfg.batch_layout):
      out = jax.device_get(par.unreplicate(eval_step(state, par.put_batch(b))))
      for k, v in out.items():
        sums[k] = sums.get(k, 0.0) + float(v)
    n = max(sums["count"], 1.0)
    return {"top1": 100 * sums["correct1"] / n, "top5": 100 * sums["correct5"] / n,
            "loss": sums["loss_sum"] / n, "examples": sums["count"]}

  writer = MetricWriter(workdir, task.name, active=is_main())
  snap = task.snapshot if writer.active else None
  snap_images = None
  if snap is not None:
    from mae_jax import visualize  # pylint: disable=g-import-not-at-top
    snap_images = visualize.eval_images(data_cfg, source, snap.num_images)

  def snapshot(done: int) -> None:
    # This process's copy of the replicated params and a local jit: process 0 alone draws,
    # without a collective.
    params = jax.tree.map(lambda a: np.asarray(a.addressable_data(0)),
                          par.unreplicate(state).params)
    writer.write_image(done, f"{task.name}/reconstructions", snap.draw(params, snap_images))
  echo(f"[{task.name}] {total} steps ({spe}/epoch, {total / spe:.1f} epochs), global batch "
       f"{batch}, {par.num_devices} {jax.devices()[0].platform} device(s) in {procs} "
       f"process(es) via {par.kind}, peak lr {schedule(warmup):.3e}")
  history: list[float] = []          # per-step train loss, this process's view
  unchecked: list[dict] = []         # device metrics of steps not yet checked for NaN/inf
  window: list[dict] = []            # checked host metrics since the last log line
  last_eval: dict[str, float] = {}
  t_window, t_start, first_step = time.time(), time.time(), start
  preemption.install()

  def check_finite(done: int) -> None:
    """Fetches the unchecked steps' metrics; stops at the first non-finite one."""
    fetched = jax.device_get(par.unreplicate(unchecked))
    unchecked.clear()
    for i, m in enumerate(fetched):
      if not (math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])):
        bad, good = done - len(fetched) + i + 1, ckpts.latest_step()
        where = (f"the last good checkpoint is step {good} in {ckpts.manager.directory}"
                 if good is not None else "no checkpoint was written")
        raise NonFiniteError(
            f"[{task.name}] non-finite training at step {bad} (loss={float(m['loss'])}, "
            f"grad_norm={float(m['grad_norm'])}); nothing after it is saved: {where}. "
            f"Lower config.{task.name}.base_lr or raise warmup_epochs, then rerun to resume.")
    history.extend(float(m["loss"]) for m in fetched)
    window.extend(fetched)

  try:
    for step in range(start, total):
      state, metrics = train_step(state, par.put_batch(next(batches)))
      unchecked.append(metrics)
      done = step + 1
      log_now = done % cfg.log_every_steps == 0 or done == total
      preempted = preemption.reached(done, ckpts.manager)
      save_now = ckpts.is_due(done) or done == total or preempted
      if log_now or save_now:
        check_finite(done)      # so that no NaN state is ever written as a checkpoint
      if log_now:
        mean = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
        now = time.time()
        rate = len(window) * batch / (now - t_window)
        eta = (total - done) * (now - t_start) / max(done - first_step, 1)
        writer.write(done, {**mean, "lr": float(schedule(step)), "images_per_sec": rate,
                            "epoch": done / spe, "eta": format_duration(eta)})
        window.clear()
        t_window = now
      if snap is not None and (done % snap.every_steps == 0 or done == total):
        snapshot(done)
      if preempted:
        ckpts.maybe_save(done, par.unreplicate(state), force=True)   # closed below
        raise Preempted(f"[{task.name}] stopped by SIGTERM at step {done}/{total}: checkpoint "
                        f"saved in {ckpts.manager.directory}; run the same command to continue")
      if eval_step is not None and done % spe == 0 and done < total and cfg.eval_every_epochs > 0 \
          and (done // spe) % cfg.eval_every_epochs == 0:
        last_eval = evaluate()
        writer.write(done, last_eval, prefix="eval")
      ckpts.maybe_save(done, par.unreplicate(state))
  except BaseException:
    # Orbax's async threads must stop before the interpreter does, or exiting prints their
    # tracebacks; a save already in flight is of a checked (finite) state, so let it finish.
    ckpts.close()
    writer.close()
    raise
  ckpts.maybe_save(total, par.unreplicate(state), force=True)

  result: dict[str, Any] = {"steps": total, "epochs": total / spe,
                            "train_seconds": time.time() - t_start}
  last_epoch = history[-spe:] if history else []
  if last_epoch:
    result["loss"] = float(np.mean(last_epoch))   # mean train loss over the final epoch
  if eval_step is not None:
    last_eval = evaluate()
    writer.write(total, last_eval, prefix="eval")
    result.update(top1=last_eval["top1"], top5=last_eval["top5"], eval_loss=last_eval["loss"])
  final = jax.device_get(par.unreplicate(state))
  if task.name == "pretrain":
    checkpoint.export_params(os.path.join(workdir, "export"), final.params["encoder"],
                             task.description)
  ckpts.close()
  writer.close()
  if is_main():
    epath.Path(workdir, RESULT_JSON).write_text(json.dumps(result, indent=2))
  return result

