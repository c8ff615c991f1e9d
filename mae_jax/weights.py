"""Loading parameters for use: every way mae_jax reads a saved model lives here.

  restore_export(dir)          an mae_jax export (pretrain's WORKDIR/pretrain/export, or what
                               mae-jax-convert writes): Orbax params + model.json
  restore_state_params(dir)    the params of the newest train state in a stage's checkpoints/
  load(path)                   an export, an official .pth or an HF ViTMAE directory -> our params
  load_torch(path)             the same, as (linen module, variables)
  load_encoder(params, ...)    pretrained encoder weights into a model's params["encoder"]
  load_mae(path, ...)          an MAE with its decoder, from any of the above (reconstructions)
  load_into_mae(model, ...)    any of the above into an MAE's params, to continue pretraining

Resuming a stage is not loading weights: checkpoint.StateCheckpoints restores whole train
states. The formats themselves are checkpoint.py (Orbax) and torch_format.py (PyTorch, HF).
"""

import json
import os
import pickle
from typing import Any

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath   # directories may be on GCS (gs://)

from mae_jax import torch_format
from mae_jax.checkpoint import MODEL_JSON, PARAMS_DIR, absolute
from mae_jax.errors import ConfigError

Params = Any


def is_export(directory: str) -> bool:
  return epath.Path(directory, MODEL_JSON).exists()


def load_description(directory: str) -> dict[str, Any]:
  """The model description (`model.json`) of an export folder."""
  return json.loads(epath.Path(directory, MODEL_JSON).read_text())


def restore_export(directory: str) -> tuple[Params, dict[str, Any]]:
  """-> (params as numpy arrays, model description) from an export folder."""
  directory = absolute(directory)
  if not is_export(directory):
    raise ConfigError(f"{directory} is not an exported mae_jax model "
                      f"(no {MODEL_JSON}); export one with the pretrain stage")
  model = load_description(directory)
  with ocp.StandardCheckpointer() as ckptr:
    params = ckptr.restore(os.path.join(directory, PARAMS_DIR))
  return jax.tree.map(np.asarray, params), model


def restore_state_params(directory: str) -> tuple[Params, int]:
  """-> (params, step) of the newest train state in a CheckpointManager folder."""
  variables, step = restore_state_variables(directory)
  return variables["params"], step


def restore_state_variables(directory: str) -> tuple[dict[str, Any], int]:
  """-> ({"params": ..., **model state (e.g. batch_stats)}, step) of the newest train state in
  a CheckpointManager folder."""
  with ocp.CheckpointManager(absolute(directory)) as manager:
    step = manager.latest_step()
    if step is None:
      raise ConfigError(f"no checkpoint in {directory}")
    state = manager.restore(step, args=ocp.args.StandardRestore())
  # In a multi-process job these are replicated on every process's devices: each process
  # holds the whole value, which np.asarray reads.
  return jax.tree.map(np.asarray, {"params": state["params"],
                                   **(state.get("model_state") or {})}), step


def load(path: str, **overrides: Any) -> tuple[dict[str, Any], Params]:
  """-> (model description, params) from a .pth, an HF directory or an mae_jax export.

  `overrides` (num_heads, decoder_heads, image_size, mask_ratio, norm_pix_loss, ln_eps;
  None = keep) win over what the files say.
  """
  if is_export(path):
    params, desc = restore_export(path)
    desc = {**desc, **{k: v for k, v in overrides.items() if v is not None}}
    # Through the official names and back: the same key checks, and a learned table resized.
    return desc, torch_format.to_params(torch_format.to_official_state(desc, params), desc)
  state, hf_config = torch_format.read_checkpoint(path)
  desc = torch_format.describe(state, hf_config, **overrides)
  return desc, torch_format.to_params(state, desc)


def load_torch(path: str, *, num_heads: int | None = None, decoder_heads: int | None = None,
               image_size: int | None = None, mask_ratio: float | None = None,
               norm_pix_loss: bool | None = None, ln_eps: float | None = None
               ) -> tuple[nn.Module, dict[str, Any]]:
  """-> (model, variables) for an official .pth or an HF ViTMAE directory.

  MAE: `model.apply(variables, images, noise=noise)` -> (loss, pred, mask);
  classifier: `model.apply(variables, images)` -> logits; encoder-only: tokens,
  with images NHWC float32, already normalised. `image_size` only matters for a
  learned position table (resized to it); fixed sin-cos tables follow the input.
  """
  desc, params = load(path, num_heads=num_heads, decoder_heads=decoder_heads,
                      image_size=image_size, mask_ratio=mask_ratio, norm_pix_loss=norm_pix_loss,
                      ln_eps=ln_eps)
  return torch_format.build_model(desc), {"params": jax.tree.map(jnp.asarray, params)}


def load_encoder(params: Params, loaded: Params, source: str) -> Params:
  """Puts exported encoder weights into a model's `params["encoder"]`.

  Every encoder weight of the model must come from the export with the same
  shape; the export's final `norm` may go unused (global pooling replaces it by fc_norm).
  `loaded` is an encoder's params, or a whole model's with an "encoder" subtree (an
  MAE or classifier converted by mae-jax-convert).
  """
  if "encoder" in loaded:
    loaded = loaded["encoder"]
  target = params["encoder"]
  flat_t = traverse_util.flatten_dict(target, sep="/")
  flat_l = traverse_util.flatten_dict(loaded, sep="/")
  missing = sorted(k for k in flat_t if k not in flat_l)
  unexpected = sorted(k for k in flat_l if k not in flat_t and not k.startswith("norm/"))
  wrong = sorted(f"{k}: {flat_l[k].shape} vs model {flat_t[k].shape}" for k in flat_t
                 if k in flat_l and flat_l[k].shape != flat_t[k].shape)
  if missing or unexpected or wrong:
    raise ConfigError(f"init_from={source} does not fit the model: missing {missing or 'none'}; "
                      f"unexpected {unexpected or 'none'}; shape mismatches {wrong or 'none'}")
  new = {k: jnp.asarray(flat_l[k], flat_t[k].dtype) for k in flat_t}
  return {**params, "encoder": traverse_util.unflatten_dict(new, sep="/")}


def _train_states(path: str) -> str | None:
  """The checkpoints folder of a run's workdir, of a stage folder, or `path` itself, when it
  holds train states; else None."""
  state_dir = path
  if epath.Path(path, "pretrain", "checkpoints").exists():
    state_dir = os.path.join(path, "pretrain", "checkpoints")
  elif epath.Path(path, "checkpoints").exists():
    state_dir = os.path.join(path, "checkpoints")
  if os.path.isdir(state_dir) and any(d.isdigit() for d in os.listdir(state_dir)):
    return state_dir
  return None


def load_mae(path: str, state_model: nn.Module, image_size: int,
             norm_pix_loss: bool | None = None) -> tuple[nn.Module, Params, str]:
  """-> (MAE module, params, what was loaded) from a run's workdir, a checkpoints folder, an
  official mae_visualize_*.pth, an HF ViTMAEForPreTraining directory or a converted MAE export.

  A train state holds params only: `state_model` is the MAE they belong to (the config's).
  The other sources describe their model themselves; `norm_pix_loss` (None = what the file
  says) and `image_size` override theirs.
  """
  state_dir = _train_states(path)
  if state_dir is not None:
    params, step = restore_state_params(state_dir)
    return state_model, params, f"{state_dir} step {step}"
  if is_export(path) and load_description(path).get("kind") != "mae":
    raise ConfigError(f"{path} holds an encoder only (the pretrain export); reconstructions need "
                      "the decoder: pass the run's workdir or its pretrain/checkpoints folder")
  desc, params = load(path, image_size=image_size, norm_pix_loss=norm_pix_loss)
  if desc.get("kind") != "mae":
    raise ConfigError(f"{path} holds a {desc.get('kind')} without the MAE decoder; official "
                      "mae_visualize_*.pth files and HF ViTMAEForPreTraining have one")
  return torch_format.build_model(desc), params, path


# What an MAE's parameter shapes say about its architecture: name -> (parameter, axis).
_SIZES = {"width": ("encoder/cls_token", -1), "patch_size": ("encoder/patch_embed/kernel", 0),
          "mlp_dim": ("encoder/blocks_0/mlp/fc1/kernel", -1),
          "decoder_width": ("decoder/decoder_embed/kernel", -1)}


def _architecture(flat: dict[str, Any]) -> dict[str, int]:
  """Flat MAE params ('encoder/...', 'decoder/...') -> the sizes they imply (those present)."""
  sizes = {name: int(flat[key].shape[axis]) for name, (key, axis) in _SIZES.items()
           if key in flat}
  for name, part, prefix in (("depth", "encoder", "blocks_"),
                             ("decoder_depth", "decoder", "decoder_blocks_")):
    blocks = {k.split("/")[1] for k in flat if k.startswith(f"{part}/{prefix}")}
    if blocks:
      sizes[name] = len(blocks)
  return sizes


def _few(items: list[str]) -> str:
  return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def load_into_mae(model: nn.Module, params: Params, path: str, where: str = "init_from"
                  ) -> tuple[Params, list[str]]:
  """An MAE's freshly initialised `params` with the weights at `path` put in, to continue
  pretraining from them -> (params, the parts `path` has no weights for, which keep theirs).

  `path`: whatever `load_mae` reads (a run's workdir, a checkpoints folder, an MAE export, an
  official .pth, an HF ViTMAEForPreTraining directory), and encoder-only sources too (the
  pretrain export, mae_pretrain_*.pth): then "decoder" stays as initialised. An encoder mask
  token (config.model.encoder_mask_tokens) no export carries stays too. A source whose sizes
  differ from `model`'s raises one ConfigError naming them (`where` names the field). Position
  tables are MAE's fixed sin-cos ones, recomputed for any image size: nothing to resize.
  """
  state_dir = _train_states(path)
  desc = None
  try:
    if state_dir is not None:
      loaded, _ = restore_state_params(state_dir)
    else:
      desc, loaded = load(path)
  except (ValueError, KeyError, OSError, ImportError, pickle.UnpicklingError) as err:
    raise ConfigError(f"{where}={path!r} cannot be read: {err}") from None
  source = {"encoder": loaded.get("encoder", loaded)}   # an encoder's params are the encoder
  if "decoder" in loaded:
    source["decoder"] = loaded["decoder"]
  flat_l = traverse_util.flatten_dict(source, sep="/")
  flat_t = traverse_util.flatten_dict(params, sep="/")
  ours, theirs = _architecture(flat_t), _architecture(flat_l)
  wrong = [f"{k} {theirs[k]} vs {ours[k]}" for k in ours if k in theirs and theirs[k] != ours[k]]
  if desc is not None and (is_export(path) or os.path.isdir(path)):
    # Exports and HF configs state their head counts (a .pth does not: derived from the width).
    for k, ours_k in (("num_heads", model.num_heads), ("decoder_heads", model.decoder_heads)):
      if k in desc and desc[k] != ours_k:
        wrong.append(f"{k} {desc[k]} vs {ours_k}")
  if wrong:
    raise ConfigError(f"{where}={path!r} does not fit config.model: {', '.join(wrong)} "
                      f"(the weights' vs the config's)")
  under = lambda key, part: key == part or key.startswith(part + "/")  # noqa: E731
  fresh = [p for p in ("decoder", "encoder/mask_token")
           if any(under(k, p) for k in flat_t) and not any(under(k, p) for k in flat_l)]
  kept = {k for k in flat_t if not any(under(k, p) for p in fresh)}
  missing = sorted(k for k in kept if k not in flat_l)
  unexpected = sorted(k for k in flat_l if k not in flat_t)
  shapes = [f"{k} {flat_l[k].shape} vs {flat_t[k].shape}" for k in sorted(kept)
            if k in flat_l and flat_l[k].shape != flat_t[k].shape]
  if missing or unexpected or shapes:
    raise ConfigError(f"{where}={path!r} does not fit config.model: missing "
                      f"{_few(missing) or 'none'}; unexpected {_few(unexpected) or 'none'}; "
                      f"shape mismatches {_few(shapes) or 'none'}")
  new = {k: jnp.asarray(flat_l[k], v.dtype) if k in kept else v for k, v in flat_t.items()}
  return traverse_util.unflatten_dict(new, sep="/"), fresh
