"""Pretraining continued from earlier weights (config.pretrain.init_from), and the decoder kept
by mae-jax-convert both ways. The digits smoke MAE; its init compiles three times in all (the
loading itself is tested on one fresh init), no training step compiles."""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from mae_jax import checkpoint, convert, experiment, torch_format, train, weights
from mae_jax.checkpoint import StateCheckpoints
from mae_jax.errors import ConfigError
from mae_jax.tasks import base, images
from tests.helpers import load_config


def _config(init_from: str = "random"):
  config = load_config("digits.py", "smoke")
  config.pretrain.init_from = init_from
  return config


def _step0(config, seed: int = 0) -> train.TrainState:
  """The loop's state before its first step (train.create_state, as train_stage builds it)."""
  task = images.pretrain_task(config)
  size = config.data.image_size
  state, _ = train.create_state(task, lambda p: task.make_tx(optax.constant_schedule(1e-3), p),
                                jnp.zeros((1, size, size, 3)), seed)
  return state


@functools.cache
def _scratch() -> train.TrainState:
  """Step 0 of a pretraining from scratch."""
  return _step0(_config())


@functools.cache
def _earlier() -> dict:
  """Earlier weights of the config's MAE: every leaf moved off the init."""
  rng = np.random.RandomState(7)
  return jax.tree.map(lambda p: np.asarray(p) + rng.normal(0, 0.2, p.shape).astype(np.float32),
                      _scratch().params)


def _continued(path: str, config=None) -> dict:
  """What Task.init makes of the fresh params with init_from=path (base.continue_mae)."""
  model = images.pretrain_task(config or _config()).model
  return base.continue_mae("pretrain", model, _scratch().params, path)


def _mae_desc(config) -> dict:
  m = config.model
  return dict(base.model_description(config), kind="mae", decoder_width=m.decoder_width,
              decoder_depth=m.decoder_depth, decoder_heads=m.decoder_heads,
              mask_ratio=m.mask_ratio, norm_pix_loss=m.norm_pix_loss, ln_eps=1e-6,
              pos_embed="sincos")


def _equal(a, b) -> None:
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, a),
               jax.tree.map(np.asarray, b))


def test_step0_is_the_loaded_mae_from_pth_hf_export_and_train_state(tmp_path, capsys):
  config = _config()
  desc = _mae_desc(config)
  torch_format.save_pth(desc, _earlier(), str(tmp_path / "mae_visualize.pth"))   # official
  torch_format.save_hf(desc, _earlier(), str(tmp_path / "hf"))          # ViTMAEForPreTraining
  checkpoint.export_params(str(tmp_path / "export"), _earlier(), desc)  # mae-jax-convert's
  # A run's pretrain stage folder: its train state's params are the MAE.
  ckpts = StateCheckpoints(str(tmp_path / "run" / "pretrain" / "checkpoints"), 1, 1)
  ckpts.maybe_save(3, dataclasses.replace(_scratch(), params=_earlier()), force=True)
  ckpts.close()

  # Through the loop's own state building: step 0 is the .pth's MAE, encoder and decoder.
  path = str(tmp_path / "mae_visualize.pth")
  _equal(_step0(_config(path)).params, _earlier())
  assert f"[pretrain] starts from {path}: its encoder and decoder\n" in capsys.readouterr().out
  for source in ("hf", "export", "run", "run/pretrain"):
    path = str(tmp_path / source)
    _equal(_continued(path), _earlier())
    assert f"[pretrain] starts from {path}: its encoder and decoder\n" == capsys.readouterr().out
    experiment.validate(_config(path))     # the classifiers' encoder-export check stays out


def test_an_encoder_only_source_leaves_the_decoder_fresh_and_says_so(tmp_path, capsys):
  config = _config()
  # The pretrain stage's export (the encoder alone) and an mae_pretrain_*.pth.
  base.export_encoder(config, {"params": _earlier()}, str(tmp_path))
  torch_format.save_pth(base.model_description(config), _earlier()["encoder"],
                        str(tmp_path / "mae_pretrain.pth"))
  for source in ("export", "mae_pretrain.pth"):
    path = str(tmp_path / source)
    params = _continued(path)
    _equal(params["encoder"], _earlier()["encoder"])
    _equal(params["decoder"], _scratch().params["decoder"])
    assert capsys.readouterr().out == (f"[pretrain] starts from {path}: its encoder; it has no "
                                       f"decoder, so the decoder starts freshly initialised\n")


def test_weights_that_do_not_fit_give_one_line_naming_the_size(tmp_path):
  config = _config()
  path = str(tmp_path / "mae.pth")
  torch_format.save_pth(_mae_desc(config), _earlier(), path)
  other = _config(path)
  other.model.variant = "mu/8"            # patch 8: the weights' patch embedding is 4x4
  other.model.decoder_width = 48
  model = images.pretrain_task(other).model
  like = jax.eval_shape(lambda: model.init({"params": jax.random.key(0),
                                            "masking": jax.random.key(1)},
                                           jnp.zeros((1, 32, 32, 3))))["params"]
  with pytest.raises(ConfigError) as err:
    base.continue_mae("pretrain", model, like, path)
  message = str(err.value)
  assert "\n" not in message and message.startswith(f"config.pretrain.init_from={path!r}")
  assert "patch_size 4 vs 8" in message and "decoder_width 32 vs 48" in message, message

  # Another image size is no misfit: MAE's position tables are fixed sin-cos, recomputed.
  resized = _config(path)
  resized.data.image_size = 2 * config.data.image_size
  _equal(_continued(path, resized), _earlier())

  for bad, reason in (("", "is empty"), (str(tmp_path / "none.pth"), "does not exist")):
    with pytest.raises(ConfigError, match=reason):
      experiment.validate(_config(bad))
  (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
  with pytest.raises(ConfigError, match="cannot be read"):
    _continued(str(tmp_path / "junk.pth"))


def test_a_resumed_run_keeps_its_checkpoint_not_init_from(tmp_path, capsys):
  config = _config()
  config.pretrain.num_steps = 2
  torch_format.save_pth(_mae_desc(config), _earlier(), str(tmp_path / "mae.pth"))
  # The stage's own checkpoint at its last step: the run resumes there and trains no step.
  ckpts = StateCheckpoints(str(tmp_path / "stage" / "checkpoints"), 1, 1)
  ckpts.maybe_save(2, dataclasses.replace(_scratch(), step=np.int32(2)), force=True)
  ckpts.close()
  finished = {}
  task = dataclasses.replace(
      images.pretrain_task(_config(str(tmp_path / "mae.pth"))),
      data=base.TrainData(1, lambda *args: iter(())),
      finish=lambda variables, stage_dir: finished.update(variables))
  train.train_stage(task, config.pretrain, str(tmp_path / "stage"), seed=0)
  assert "resuming from step 2" in capsys.readouterr().out
  _equal(finished["params"], _scratch().params)


def test_convert_keeps_the_decoder_both_ways(tmp_path):
  torch_format.save_pth(_mae_desc(_config()), _earlier(), str(tmp_path / "in.pth"))
  original = torch.load(tmp_path / "in.pth", weights_only=True)["model"]
  assert any(k.startswith("decoder_blocks.") for k in original)
  convert.main(["--input", str(tmp_path / "in.pth"), "--output", str(tmp_path / "export")])
  params, desc = weights.restore_export(str(tmp_path / "export"))
  assert desc["kind"] == "mae"
  _equal(params, _earlier())              # torch -> orbax: the decoder is in the export
  convert.main(["--input", str(tmp_path / "export"), "--output", str(tmp_path / "out.pth"),
                "--format", "pth"])
  back = torch.load(tmp_path / "out.pth", weights_only=True)["model"]
  assert set(back) == set(original)       # orbax -> torch: every decoder tensor is back
  for k, t in original.items():
    torch.testing.assert_close(back[k], t, rtol=0, atol=0, msg=k)
  convert.main(["--input", str(tmp_path / "export"), "--output", str(tmp_path / "hf"),
                "--format", "hf"])
  _, from_hf = weights.load(str(tmp_path / "hf"))
  _equal(from_hf, _earlier())             # and through HF's layout
  assert os.path.exists(tmp_path / "hf" / torch_format.HF_SAFETENSORS)
