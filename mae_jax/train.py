"""The one training loop: it runs any Task (tasks/base.py) and knows no stage.

`make_train_step` builds the per-device step (pure: (state, batch) -> (state,
metrics)); `train_stage` owns everything around it: checkpoints, resuming, logging,
evaluation, preemption. What it trains on, how it scores and what it leaves behind come
from the Task. Importing this module does not import TensorFlow.
"""

import json
import os
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from etils import epath   # the workdir may be on GCS (gs://)

from mae_jax import optim, preemption
from mae_jax.checkpoint import StateCheckpoints
from mae_jax.distributed import echo, is_main
from mae_jax.errors import Preempted
from mae_jax.metrics import MetricWriter
from mae_jax.parallel import DataParallel, device_index, pmean, psum
from mae_jax.progress import StepLog, every
from mae_jax.tasks.base import Task

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
    local = jax.tree.leaves(batch)[0].shape[0]
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
    out = task.evaluation.sums(state.params, state.model_state, batch)
    # With a host reduction the outputs are per example; the host sums them.
    return out if task.evaluation.host is not None else psum(out)
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


def train_stage(task: Task, cfg: ml_collections.ConfigDict, workdir: str, seed: int,
                parallel: str = "shard_map") -> dict[str, Any]:
  """Trains `task` as `cfg` (its config.<stage>) says, resuming from workdir/checkpoints.

  Returns the stage's final metrics (also written to workdir/result.json).
  """
  par = DataParallel(parallel)
  batch, spe = cfg.batch_size, task.data.steps_per_epoch
  total, warmup = stage_steps(cfg, spe)
  schedule = optim.SCHEDULES[cfg.lr_schedule](optim.scaled_lr(cfg.base_lr, batch), warmup, total,
                                              cfg.min_lr)
  host_state, tx = create_state(task, lambda p: task.make_tx(schedule, p),
                                jnp.zeros((1, *task.input_shape), jnp.float32), seed)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  ckpts = StateCheckpoints(os.path.join(workdir, "checkpoints"), cfg.keep_checkpoints,
                           cfg.checkpoint_every_steps)
  log = lambda msg: echo(f"[{task.name}] {msg}")  # noqa: E731
  state, start = _resume(ckpts, par, par.put_state(host_state), log)

  train_step = par.wrap(make_train_step(task, tx, cfg.grad_accum_steps), donate_state=True)
  procs, pid = jax.process_count(), jax.process_index()
  batches = task.data.batches(seed, start, procs, pid)
  evaluate = _evaluator(task, par, ckpts, procs, pid)
  writer = MetricWriter(workdir, task.name, active=is_main())
  # Only the writing process draws: from this process's copy of the replicated params, with a
  # local jit, so without a collective.
  draw = task.snapshot.prepare() if task.snapshot is not None and writer.active else None
  watch = task.monitor.prepare() if task.monitor is not None and writer.active else None

  def scores(state: TrainState) -> tuple[dict[str, Any], dict[str, float]]:
    """(the evaluation's metrics, the monitor's): {} for what the task lacks."""
    return (evaluate(state) if evaluate is not None else {},
            watch(_host_params(par, state)) if watch is not None else {})
  echo(f"[{task.name}] {total} steps ({spe}/epoch, {total / spe:.1f} epochs), global batch "
       f"{batch}, {par.num_devices} {jax.devices()[0].platform} device(s) in {procs} "
       f"process(es) via {par.kind}, peak lr {schedule(warmup):.3e}")
  steps = StepLog(task.name, writer, total=total, steps_per_epoch=spe, batch_size=batch,
                  first_step=start, lr=schedule,
                  fetch=lambda ms: jax.device_get(par.unreplicate(ms)),
                  last_good=lambda: _last_good(ckpts))
  if watch is not None and start == 0:
    # The features before any training: what the stage's training adds is measured from here.
    writer.write(0, watch(_host_params(par, state)), prefix="eval")
  preemption.install()
  try:
    for step in range(start, total):
      state, metrics = train_step(state, par.put_batch(next(batches)))
      steps.add(metrics)
      done = step + 1
      log_now = every(done, cfg.log_every_steps) or done == total
      preempted = preemption.reached(done, ckpts.manager)
      if log_now or ckpts.is_due(done) or done == total or preempted:
        steps.check(done)      # so that no NaN state is ever written as a checkpoint
      if log_now:
        steps.write(done)
      if draw is not None and (every(done, task.snapshot.every_steps) or done == total):
        image = draw(_host_params(par, state))
        writer.write_image(done, f"{task.name}/{task.snapshot.tag}", image)
      if preempted:
        ckpts.maybe_save(done, par.unreplicate(state), force=True)   # closed below
        raise Preempted(f"[{task.name}] stopped by SIGTERM at step {done}/{total}: checkpoint "
                        f"saved in {ckpts.manager.directory}; run the same command to continue")
      if ((evaluate is not None or watch is not None) and done < total and every(done, spe)
          and every(done // spe, cfg.eval_every_epochs)):
        measured, watched = scores(state)
        writer.write(done, {**measured, **watched}, prefix="eval")
      ckpts.maybe_save(done, par.unreplicate(state))
  except BaseException:
    # Orbax's async threads must stop before the interpreter does, or exiting prints their
    # tracebacks; a save already in flight is of a checked (finite) state, so let it finish.
    ckpts.close()
    writer.close()
    # The traceback keeps this frame alive; a tf.data iterator over a Python generator that is
    # still alive when the interpreter shuts down can hang the exit (its thread waits on the GIL).
    del batches
    raise
  ckpts.maybe_save(total, par.unreplicate(state), force=True)

  result: dict[str, Any] = {"steps": total, "epochs": total / spe,
                            "train_seconds": steps.seconds()}
  if (loss := steps.final_epoch_loss()) is not None:
    result["loss"] = loss   # mean train loss over the final epoch
  if task.data.skips is not None:   # every process: the union is a collective
    result.update(task.data.skips.result(_union if procs > 1 else None))
  if evaluate is not None or watch is not None:
    final_metrics, watched = scores(state)
    writer.write(total, {**final_metrics, **watched}, prefix="eval")
    if evaluate is not None:
      result.update(task.evaluation.result(final_metrics))
    result.update(watched)
  if task.finish is not None:
    final = jax.device_get(par.unreplicate(state))
    images = task.finish({"params": final.params, **final.model_state}, workdir) or {}
    for tag, image in images.items():
      writer.write_image(total, f"{task.name}/{tag}", image)
  ckpts.close()
  writer.close()
  if is_main():
    epath.Path(workdir, RESULT_JSON).write_text(json.dumps(result, indent=2))
  return result


def _resume(ckpts: StateCheckpoints, par: DataParallel, state: TrainState,
            log: Callable[[str], None]) -> tuple[TrainState, int]:
  """(state, first step): the newest good checkpoint's, or the fresh state at step 0."""
  restored = ckpts.restore_latest_good(par.unreplicate(state), log)
  if restored is None:
    return state, 0
  state = par.put_state(jax.device_get(restored)) if par.kind == "pmap" else restored
  start = int(jax.device_get(par.unreplicate(state).step))
  log(f"resuming from step {start} in {ckpts.manager.directory}")
  return state, start


def _evaluator(task: Task, par: DataParallel, ckpts: StateCheckpoints, procs: int, pid: int
               ) -> Callable[[TrainState], dict[str, float]] | None:
  """state -> the task's eval metrics over one pass of its eval split; None without one."""
  if task.evaluation is None:
    return None
  ev = task.evaluation
  eval_step = par.wrap(make_eval_step(task), per_example=ev.host is not None)

  def evaluate(state: TrainState) -> dict[str, float]:
    # Opening a dataset must not overlap a checkpoint write: TFDS's mock_data (tests) swaps the
    # file system out globally while it builds one, and the write would land in its sandbox.
    ckpts.wait()
    sums: dict[str, Any] = {}
    for b in ev.batches(procs, pid):
      # "host_" entries (e.g. label maps at their own sizes) never go to the devices.
      on_host = {k: b.pop(k) for k in list(b) if k.startswith("host_")}
      out = eval_step(state, par.put_batch(b))
      if ev.host is not None:
        out = ev.host(par.local_rows(out), {**b, **on_host})
      else:
        out = jax.device_get(par.unreplicate(out))
      for k, v in out.items():
        sums[k] = sums.get(k, 0.0) + np.asarray(v, np.float64)
    if ev.host is not None and procs > 1:
      # Host sums are this process's; the metrics are of the whole split.
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      sums = {k: np.asarray(multihost_utils.process_allgather(v)).sum(0) for k, v in sums.items()}
    return ev.metrics({k: float(v) if np.ndim(v) == 0 else v for k, v in sums.items()})

  return evaluate


def _union(mask: np.ndarray) -> np.ndarray:
  """A bool mask, or-ed over every process."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(mask)).any(0)


def _host_params(par: DataParallel, state: TrainState) -> Any:
  """This process's copy of the replicated params, as numpy arrays."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), par.unreplicate(state).params)


def _last_good(ckpts: StateCheckpoints) -> str:
  good = ckpts.latest_step()
  return (f"the last good checkpoint is step {good} in {ckpts.manager.directory}"
          if good is not None else "no checkpoint was written")
