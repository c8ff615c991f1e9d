"""Training batches that skip the examples whose image does not decode, exactly on every replay.

A step's batch (one shard's) is decoded whole, as fast as tf.data goes. If any of its examples
fails (a truncated or corrupt file: its header parsed at the scan, its data does not), the whole
batch fails, and that batch alone is made again one example at a time (so it costs about twice):
each slot whose example fails takes, in order, the next examples of this shard's stream that
decode (those of the following steps, at most AHEAD_STEPS of them, with the crops drawn for them
there; they are trained on again at their own step); the slot keeps its stream position.
Whether a crop of a file decodes is a pure function of the file and the window, so a step's
batch stays a pure function of (seed, step): a resumed run skips exactly what an uninterrupted
one skips. (A JPEG cut after the crop's last row decodes that crop, correctly: it is trained on
in that epoch.)

Each batch names its skipped examples ("skipped": their split indices, -1 elsewhere), for the
count (skips.py). Steps are built as tf.data datasets inside an interleave, so that a failure
stays inside its step: dropping failed batches from one flat stream (ignore_errors) would keep
reading, with nothing to show for it, as long as every batch held a bad file; and dropping
failed examples from it would shift every later batch, which a resumed run could not know.
"""

import threading
from typing import Callable

import numpy as np

from mae_jax.data.base import steps_per_epoch
from mae_jax.data.schedule import train_schedule
from mae_jax.data.tfsetup import tf

# Schedule rows (indices, positions, draws...), a step's or an epoch's -> their examples.
ExamplesFn = Callable[[tf.data.Dataset], tf.data.Dataset]
# Steps a refilled batch may take its examples from: fewer than a batch's worth decoding among
# them (> 7/8 of the images bad, or a bug that fails on every image) stops the run.
AHEAD_STEPS = 8


def step_rows(num_examples: int, seed: int, batch_size: int, num_shards: int,
              shard_index: int) -> Callable[[np.int64], tuple[np.ndarray, np.ndarray]]:
  """rows(step) -> this shard's int64 (indices, positions) (batch_size,) at `step`, as
  schedule.train_schedule gives them (for the steps a refilled batch looks ahead to)."""
  spe = steps_per_epoch(num_examples, batch_size * num_shards)
  lock, epoch_rows = threading.Lock(), {}

  def rows(step: np.int64) -> tuple[np.ndarray, np.ndarray]:
    epoch, i = divmod(int(step), spe)
    with lock:   # tf.data calls it from several threads; one epoch's order kept at a time
      if epoch not in epoch_rows:
        epoch_rows.clear()
        epoch_rows[epoch] = next(train_schedule(
            num_examples, seed=seed, batch_size=batch_size, num_shards=num_shards,
            shard_index=shard_index, start_step=epoch * spe))
      indices, positions = epoch_rows[epoch]
    part = slice(i * batch_size, (i + 1) * batch_size)
    return indices[part], positions[part]

  return rows


def ahead_fn(rows: Callable[[np.int64], tuple[np.ndarray, np.ndarray]],
             draws: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, ...]], batch_size: int,
             num_steps: int) -> Callable[[tf.Tensor], tf.data.Dataset]:
  """ahead(step) -> this shard's drawn schedule rows (`step_rows`, `draws`) of the `num_steps`
  steps from `step` on, one step per element."""

  def drawn(step):
    indices, positions = tf.numpy_function(rows, [step], (tf.int64, tf.int64), stateful=False)
    return draws(tf.ensure_shape(indices, [batch_size]), tf.ensure_shape(positions, [batch_size]))

  return lambda step: tf.data.Dataset.range(step, step + num_steps).map(drawn)


def step_batches(steps: tf.data.Dataset, to_examples: ExamplesFn,
                 ahead: Callable[[tf.Tensor], tf.data.Dataset], batch_size: int,
                 global_batch: int, too_few: str, cores: int) -> tf.data.Dataset:
  """Each step's batch: {"image", "label", "position": (batch_size, ...), "skipped": int64
  (batch_size,) the indices of the examples that did not decode, -1 elsewhere}.

  `steps`: a step's schedule rows per element; to_examples(rows) -> their examples
  ({"image", "label", "position"}); ahead(step) -> the rows of the steps from `step` on, where
  a refilled batch takes its examples (`_refilled`; `too_few` is its error when even they run
  out); `cores`: the CPUs decoding.
  """

  def step_batch(indices, positions, *draws):
    whole = to_examples(tf.data.Dataset.from_tensors((indices, positions, *draws)))
    whole = whole.batch(batch_size, drop_remainder=True).map(
        lambda b: {**b, "skipped": tf.fill([batch_size], tf.constant(-1, tf.int64))})
    # The whole batch, unless one of its examples fails to decode (the batch then fails);
    # then the batch made again (ahead is only read in that case).
    refilled = _refilled(to_examples(ahead(positions[0] // global_batch)), indices, positions,
                         batch_size, too_few)
    return whole.ignore_errors().concatenate(refilled).take(1)

  # Steps overlap, so the decoders stay busy across a step's end: enough of them for twice as
  # many examples in flight as there are cores.
  cycle = max(2, -(-2 * cores // batch_size))
  return steps.interleave(step_batch, cycle_length=cycle, num_parallel_calls=cycle,
                          deterministic=True)


def _refilled(examples: tf.data.Dataset, indices: tf.Tensor, positions: tf.Tensor,
              batch_size: int, too_few: str) -> tf.data.Dataset:
  """The batch of a step's rows (`indices`, `positions`) whose examples do not all decode:
  each failing slot takes, in order, the next example of `examples` (the stream from this step
  on) that decodes and keeps its position; "skipped" holds the failed examples' indices."""
  # Rare (a batch with a bad file), so each error is logged (TF_CPP_MIN_LOG_LEVEL <= 1).
  decoded = examples.ignore_errors(log_warning=True).take(batch_size).batch(batch_size)
  # None decodes: a batch of nothing, refused below with `too_few`, instead of no batch.
  nothing = tf.data.Dataset.from_tensors(tf.nest.map_structure(
      lambda spec: tf.zeros([0, *spec.shape[1:]], spec.dtype), decoded.element_spec))

  def fill(batch):
    got = batch["position"]
    with tf.control_dependencies([tf.debugging.assert_equal(
        tf.shape(got)[0], batch_size, message=too_few)]):
      ok = tf.reduce_any(tf.equal(positions[:, None], got[None, :]), axis=1)   # slot decoded
    # The decoded examples of this step come first in `batch`, in slot order, then the ones
    # taken from ahead: slot j gets its own, or the next one taken.
    taken = tf.cumsum(tf.cast(tf.logical_not(ok), tf.int32)) - 1
    order = tf.where(ok, tf.cumsum(tf.cast(ok, tf.int32)) - 1,
                     tf.reduce_sum(tf.cast(ok, tf.int32)) + taken)
    out = {k: tf.gather(v, order) for k, v in batch.items() if k != "position"}
    return {**out, "position": positions,
            "skipped": tf.where(ok, tf.constant(-1, tf.int64), indices)}

  return decoded.concatenate(nothing).take(1).map(fill)
