"""Data parallelism: shard_map on 4 devices == pmap on 4 devices == 1 device, same global batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax import optim, pixels, train
from mae_jax.tasks import images as tasks
from mae_jax.parallel import DataParallel
from tests.helpers import load_config

STEPS = 3


@pytest.fixture(scope="module")
def setup():
  assert jax.device_count() == 4, "conftest.py asks for 4 fake CPU devices"
  config = load_config("digits.py", "smoke")
  rs = np.random.RandomState(0)
  shape = (16, *pixels.image_shape(32, config.data.batch_layout))    # as tf.data gives them
  batches = [{"image": rs.randint(0, 256, shape).astype(np.uint8),
              "label": rs.randint(0, 10, 16).astype(np.int32)} for _ in range(STEPS)]
  return config, batches


def _train(task, batches, kind, devices, accum=1):
  schedule = optim.warmup_cosine(1e-3, 1, 10, 0.0)
  host, tx = train.create_state(task, lambda p: task.make_tx(schedule, p),
                                jnp.zeros((1, 32, 32, 3)), seed=0)
  par = DataParallel(kind, devices)
  state = par.put_state(host)
  step = par.wrap(train.make_train_step(task, tx, accum), donate_state=True)
  metrics = {}
  for b in batches:
    state, metrics = step(state, par.put_batch(b))
  return jax.device_get(par.unreplicate(state)), jax.device_get(par.unreplicate(metrics))


def _max_diff(a, b):
  return max((float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))),
             default=0.0)


@pytest.mark.slow   # three real train steps compiled three ways each
@pytest.mark.parametrize("stage", ["pretrain", "finetune_nodrop", "linprobe"])
def test_pmap_shard_map_and_one_device_agree(setup, stage):
  config, batches = setup
  if stage == "pretrain":
    task = tasks.pretrain_task(config)
  else:
    name = stage.split("_")[0]
    config[name].drop_path = 0.0      # drop path draws per device; without it all is equal
    config[name].init_from = "random"
    task = tasks.classifier_task(config, name, 10, workdir="unused")
  one, m1 = _train(task, batches, "shard_map", jax.devices()[:1])
  sm, m_sm = _train(task, batches, "shard_map", None)
  pm, m_pm = _train(task, batches, "pmap", None)
  accum, _ = _train(task, batches, "shard_map", None, accum=2)
  assert int(sm.step) == int(pm.step) == STEPS
  # Same per-example noise whatever the split; reductions differ only in float order.
  for other in (sm, pm, accum):
    assert _max_diff(one.params, other.params) < 2e-4
  for other in (sm, pm):    # (micro-batches update BatchNorm's running averages twice a step)
    assert _max_diff(one.model_state, other.model_state) < 1e-5
  assert _max_diff(sm.params, pm.params) < 1e-5
  for m in (m_sm, m_pm):     # an explicit mean, not a sum, over devices
    np.testing.assert_allclose(m["loss"], m1["loss"], rtol=1e-5)
    np.testing.assert_allclose(m["grad_norm"], m1["grad_norm"], rtol=1e-4)
  # The parameters did move (equal no-ops would pass the checks above too).
  start, _ = _train(task, [], "shard_map", jax.devices()[:1])
  assert _max_diff(one.params, start.params) > 1e-4
