"""The training order: which examples each step reads, as a pure function of (seed, step).

Epoch e visits the examples in `epoch_permutation(seed, e, n)`; global batch i of the epoch is
that permutation's slice [i*G, (i+1)*G) (G = batch_size * num_shards, remainder dropped), and
shard k takes its contiguous part [k*batch_size, (k+1)*batch_size) of the global batch. An
example's stream position, step * G + slot, keys every random draw made for it, so a resumed
run and every sharding see the same examples drawn the same way. No TensorFlow here: the image
and segmentation pipelines feed this schedule to tf.data.
"""

from typing import Iterator

import numpy as np

from mae_jax.data.base import steps_per_epoch


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order in which epoch `epoch` visits example indices 0..num_examples-1."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def train_schedule(num_examples: int, *, seed: int, batch_size: int, num_shards: int = 1,
                   shard_index: int = 0, start_step: int = 0,
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """This shard's (example indices, stream positions) from `start_step` on, one epoch per item.

  Both arrays are int64 of length (steps left in the epoch) * batch_size; consecutive runs of
  `batch_size` entries are consecutive steps. Endless. ValueError (at the first item) if the
  examples do not fill one global batch.
  """
  global_batch = batch_size * num_shards
  if num_examples < global_batch:
    raise ValueError(f"{num_examples} examples are fewer than one global batch of "
                     f"{batch_size} x {num_shards} shards")
  steps = steps_per_epoch(num_examples, global_batch)
  epoch, first_step = divmod(start_step, steps)
  lo = shard_index * batch_size
  slot = np.arange(lo, lo + batch_size)
  while True:
    order = epoch_permutation(seed, epoch, num_examples)[:steps * global_batch]
    indices = order.reshape(steps, global_batch)[first_step:, lo:lo + batch_size]
    step = np.arange(epoch * steps + first_step, (epoch + 1) * steps)
    positions = step[:, None] * global_batch + slot[None, :]
    yield indices.reshape(-1).astype(np.int64), positions.reshape(-1).astype(np.int64)
    epoch, first_step = epoch + 1, 0
