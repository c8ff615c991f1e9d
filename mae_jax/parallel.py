"""Data parallelism: one per-device step, run under jit + shard_map (default) or pmap.

A per-device function sees its shard of the batch and a full copy of the state and
reduces across devices itself (`lax.pmean(..., DATA_AXIS)`), so the same code runs
under both transforms and on any number of devices.
"""

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


DATA_AXIS = "data"
PARALLEL_KINDS = ("shard_map", "pmap")


class DataParallel:
  """Places state and batches and wraps per-device functions for one of PARALLEL_KINDS
  (experiment.validate checks the config's choice).

  shard_map: state replicated over a 1-D mesh of every device, batches sharded on
  their leading axis. pmap: state stacked per local device, batches reshaped to
  (devices, batch / devices, ...). `unreplicate` gives the single-copy state either way.
  """

  def __init__(self, kind: str = "shard_map", devices: list[jax.Device] | None = None):
    self.kind = kind
    self.devices = list(devices or jax.devices())
    self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
    self.mesh = Mesh(np.array(self.devices), (DATA_AXIS,))
    self.num_devices = len(self.devices)
    self.replicated = NamedSharding(self.mesh, P())
    self.sharded = NamedSharding(self.mesh, P(DATA_AXIS))

  def wrap(self, fn: Callable[..., Any], donate_state: bool = False, per_example: bool = False
           ) -> Callable[..., Any]:
    """fn(state, batch) -> outputs reduced over DATA_AXIS; returns the compiled global version.

    per_example: fn's outputs are per example instead (leading axis: the device's batch rows),
    read back with `local_rows`.
    """
    donate = (0,) if donate_state else ()
    if self.kind == "pmap":
      return jax.pmap(fn, axis_name=DATA_AXIS, donate_argnums=donate, devices=self.devices)
    # check_vma=False: without it shard_map would sum the gradients of replicated
    # parameters across devices by itself; fn reduces explicitly, as under pmap.
    mapped = jax.shard_map(fn, mesh=self.mesh, in_specs=(P(), P(DATA_AXIS)),
                           out_specs=P(DATA_AXIS) if per_example else P(), check_vma=False)
    return jax.jit(mapped, donate_argnums=donate)

  def local_rows(self, tree: Any) -> Any:
    """Per-example outputs of a `per_example` function -> numpy rows of this process's examples,
    in the order of its local batch."""
    if self.kind == "pmap":
      return jax.tree.map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), tree)

    def rows(x: jax.Array) -> np.ndarray:
      shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
      return np.concatenate([np.asarray(s.data) for s in shards])

    return jax.tree.map(rows, tree)

  def put_state(self, state: Any) -> Any:
    if self.kind == "pmap":
      n = len(self.local_devices)
      stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), state)
      return jax.pmap(lambda x: x, devices=self.local_devices)(stacked)
    return jax.device_put(state, self.replicated)

  def unreplicate(self, tree: Any) -> Any:
    """State or metrics from a wrapped function -> one copy (device arrays)."""
    if self.kind == "pmap":
      return jax.tree.map(lambda x: x[0], tree)
    return tree

  def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """A process-local numpy batch -> the global batch, split over devices."""
    if self.kind == "pmap":
      n = len(self.local_devices)
      return jax.tree.map(lambda x: x.reshape((n, -1) + x.shape[1:]), batch)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self.sharded, x), batch)


def pmean(tree: Any) -> Any:
  # On one device the all-reduce is not free: XLA's CPU backend still copies every gradient
  # (~50 ms per B/16 step). psum(1) is the static axis size.
  if jax.lax.psum(1, DATA_AXIS) == 1:
    return tree
  return jax.lax.pmean(tree, DATA_AXIS)


def psum(tree: Any) -> Any:
  return jax.lax.psum(tree, DATA_AXIS)


def device_index() -> jax.Array:
  return jax.lax.axis_index(DATA_AXIS)

