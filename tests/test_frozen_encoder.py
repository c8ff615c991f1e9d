"""Frozen-encoder modes (config.<stage>.probe): the head trains, the encoder does not, so the
encoder's features are measured without the fine-tune's confound."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mae_jax.tasks import segmentation, volumes
from tests.helpers import load_config


def _segment_task(probe: bool, head: str = "upernet"):
  config = load_config("digits_seg.py", "smoke")
  config.segment.update(probe=probe, init_from="random", head=head)
  return segmentation.segment_task(config, "unused")


def _linear_segment_task(probe: bool):
  return _segment_task(probe, head="linear")


def _segment3d_task(probe: bool):
  config = load_config("brain.py", "smoke")
  config.segment3d.update(probe=probe, init_from="random")
  return volumes.segment3d_task(config, "unused", num_classes=3)


@pytest.mark.parametrize("make_task", [_segment_task, _linear_segment_task, _segment3d_task])
@pytest.mark.parametrize("probe", [True, False])
def test_probe_moves_the_head_and_never_the_encoder(make_task, probe):
  task = make_task(probe)
  x = jnp.zeros((1, *task.input_shape))
  params = task.init(jax.random.key(0), x)["params"]
  tx = task.make_tx(optax.constant_schedule(1e-2), params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  moved = {name: any(np.abs(np.asarray(u)).max() > 0 for u in jax.tree.leaves(sub))
           for name, sub in updates.items()}
  assert moved.pop("encoder") is not probe
  assert any(moved.values()), moved   # the head, neck or decoder trains either way
