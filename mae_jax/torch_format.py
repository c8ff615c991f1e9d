"""The official PyTorch MAE and HF transformers ViTMAE formats: reading, describing, writing.

`read_checkpoint` gives a state dict in official names and torch layout (.pth, .safetensors
or an HF hub directory), `describe` the model description (model.json) its shapes imply,
`to_params` our parameters; `to_official_state`, `save_pth` and `save_hf` go the other way.
`mae_jax.weights.load` is the one entry point that reads any saved model; `mae-jax-convert`
(convert.py) writes any of these formats.

The architecture comes from the tensor shapes (and an HF config.json, which is
read in full); head counts follow the official releases (encoder width / 64,
decoder 16) unless the HF config or an override says otherwise. Nothing in a
pickle can run code: torch.load(weights_only=True).
"""

import argparse
import json
import os
import re
from typing import Any

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from mae_jax import checkpoint
from mae_jax.models import MAE, Classifier, Encoder
from mae_jax.models.posembed import resize_table, sincos_2d
from mae_jax.models.vit import LN_EPS
from mae_jax.torch_names import (DECODER_POS_EMBED, POS_EMBED, from_torch, hf_to_official,
                                 official_name, official_to_hf, to_torch)

FORMATS = ("orbax", "pth", "hf")
HF_CONFIG, HF_SAFETENSORS, HF_BIN = "config.json", "model.safetensors", "pytorch_model.bin"
# A stored sin-cos table equal to ours within this is fixed (recomputed at any resolution);
# beyond it, training changed it (fine-tuned timm models) and it becomes a learned table.
SINCOS_ATOL = 1e-4


# ----------------------------------------------------------------------------- reading files

def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError("reading or writing .pth / pytorch_model.bin needs PyTorch "
                      "(pip install torch); HF directories with model.safetensors do not") from None
  return torch


def _torch_load(path: str) -> dict[str, np.ndarray]:
  """A state dict from a torch pickle, without running code from it (weights_only)."""
  torch = _torch()
  # Official training checkpoints also hold their argparse Namespace: plain data, allowed.
  with torch.serialization.safe_globals([argparse.Namespace]):
    obj = torch.load(path, map_location="cpu", weights_only=True)
  for key in ("model", "state_dict"):
    if isinstance(obj, dict) and isinstance(obj.get(key), dict):
      obj = obj[key]
      break
  if not isinstance(obj, dict):
    raise ValueError(f"{path}: expected a state dict or {{'model': state_dict}}, got {type(obj)}")
  out = {}
  for name, value in obj.items():
    if isinstance(value, torch.Tensor):
      value = value.detach().cpu()
      out[name.removeprefix("module.")] = (value.float() if value.is_floating_point()
                                           else value).numpy()
  return out


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
  """-> (state dict in official names and torch layout, HF config.json or None)."""
  if os.path.isdir(path):
    config_path = os.path.join(path, HF_CONFIG)
    if not os.path.exists(config_path):
      raise FileNotFoundError(f"{path} is neither an HF ViTMAE directory (no {HF_CONFIG}) nor "
                              f"an mae_jax export (no {checkpoint.MODEL_JSON})")
    with open(config_path) as f:
      hf_config = json.load(f)
    if os.path.exists(os.path.join(path, HF_SAFETENSORS)):
      from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
      state = load_file(os.path.join(path, HF_SAFETENSORS))
    elif os.path.exists(os.path.join(path, HF_BIN)):
      state = _torch_load(os.path.join(path, HF_BIN))
    else:
      raise FileNotFoundError(f"{path}: neither {HF_SAFETENSORS} nor {HF_BIN}")
    return hf_to_official({k: np.asarray(v, np.float32) for k, v in state.items()}), hf_config
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    state = load_file(path)
  else:
    state = _torch_load(path)
  # A lone file may hold HF names too; official names pass through hf_to_official unchanged.
  return hf_to_official(state), None


# ----------------------------------------------------------------------------- architecture

def _count(state: dict[str, Any], prefix: str) -> int:
  ids = {int(m.group(1)) for k in state if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
  return max(ids) + 1 if ids else 0


def _grid_of(table: np.ndarray) -> int:
  side = int(round((table.shape[1] - 1) ** 0.5))
  if side * side != table.shape[1] - 1:
    raise ValueError(f"a position table of {table.shape[1] - 1} patches is not a square grid")
  return side


def _is_sincos(table: np.ndarray) -> bool:
  expected = sincos_2d(table.shape[-1], _grid_of(table), cls_token=True)
  return bool(np.allclose(table[0], expected, atol=SINCOS_ATOL))


def _fixed_table_error(name: str, table: np.ndarray) -> ValueError:
  hint = (" (all zeros: transformers 5 leaves the tables of a freshly built ViTMAE unset; "
          "hub checkpoints have them)" if not np.any(table) else "")
  return ValueError(f"{name} is not MAE's fixed sin-cos table{hint}")


def _need(state: dict[str, Any], *names: str) -> None:
  missing = [n for n in names if n not in state]
  if missing:
    raise ValueError(f"not an MAE / ViT checkpoint: missing {missing}; it has "
                     f"{sorted(state)[:20]}{' ...' if len(state) > 20 else ''}")


def describe(state: dict[str, np.ndarray], hf_config: dict[str, Any] | None = None,
             **overrides: Any) -> dict[str, Any]:
  """The model description (model.json) of an official-named state dict.

  Shapes give the sizes; `hf_config` its head counts, layer-norm eps, mask ratio,
  norm_pix_loss and image size; `overrides` (num_heads, decoder_heads, image_size,
  mask_ratio, norm_pix_loss, ln_eps; None = keep) win over both.
  """
  _need(state, "cls_token", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
  hf = hf_config or {}
  width = int(state["cls_token"].shape[-1])
  patch = int(state["patch_embed.proj.weight"].shape[-1])
  mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / width
  if "head.weight" in state:
    kind = "classifier"
  elif "decoder_embed.weight" in state:
    kind = "mae"
  else:
    kind = "encoder"
  image_size = hf.get("image_size")
  if POS_EMBED in state:
    image_size = _grid_of(state[POS_EMBED]) * patch
  # MAE's tables are fixed; only fine-tuning (timm) trains one, which then stays learned.
  learned = POS_EMBED in state and not _is_sincos(state[POS_EMBED])
  if learned and kind != "classifier":
    raise _fixed_table_error(POS_EMBED, state[POS_EMBED])
  desc: dict[str, Any] = dict(
      kind=kind, width=width, depth=_count(state, "blocks"),
      num_heads=int(hf.get("num_attention_heads", max(width // 64, 1))), patch_size=patch,
      mlp_ratio=mlp_ratio, image_size=int(image_size or 224),
      ln_eps=float(hf.get("layer_norm_eps", LN_EPS)),
      pos_embed="learned" if learned else "sincos")
  if kind == "mae":
    _need(state, "decoder_blocks.0.mlp.fc1.weight", "decoder_pred.weight")
    dw = int(state["decoder_embed.weight"].shape[0])
    desc.update(decoder_width=dw, decoder_depth=_count(state, "decoder_blocks"),
                decoder_heads=int(hf.get("decoder_num_attention_heads", 16)),
                mask_ratio=float(hf.get("mask_ratio", 0.75)),
                norm_pix_loss=bool(hf.get("norm_pix_loss", False)))
    dec_ratio = state["decoder_blocks.0.mlp.fc1.weight"].shape[0] / dw
    if dec_ratio != mlp_ratio:
      raise ValueError(f"decoder MLP ratio {dec_ratio} differs from the encoder's {mlp_ratio}; "
                       "mae_jax's MAE shares one mlp_ratio")
    if DECODER_POS_EMBED in state and not _is_sincos(state[DECODER_POS_EMBED]):
      raise _fixed_table_error(DECODER_POS_EMBED, state[DECODER_POS_EMBED])
  if kind == "classifier":
    desc.update(num_classes=int(state["head.weight"].shape[0]),
                global_pool="fc_norm.weight" in state)
  desc.update({k: v for k, v in overrides.items() if v is not None})
  _check_hf_config(hf, desc)
  return desc


def _check_hf_config(hf: dict[str, Any], desc: dict[str, Any]) -> None:
  """Refuses an HF config that states something mae_jax's model cannot compute."""
  if not hf:
    return
  wrong = []
  if hf.get("hidden_act", "gelu") != "gelu":
    wrong.append(f"hidden_act={hf['hidden_act']!r} (mae_jax: exact gelu)")
  if not hf.get("qkv_bias", True):
    wrong.append("qkv_bias=false (mae_jax: qkv has a bias)")
  if hf.get("num_channels", 3) != 3:
    wrong.append(f"num_channels={hf['num_channels']} (mae_jax: RGB)")
  for key, ours in (("hidden_size", desc["width"]), ("num_hidden_layers", desc["depth"]),
                    ("intermediate_size", int(desc["width"] * desc["mlp_ratio"])),
                    ("patch_size", desc["patch_size"])):
    if key in hf and hf[key] != ours:
      wrong.append(f"{key}={hf[key]} but the weights say {ours}")
  if wrong:
    raise ValueError("HF config.json does not fit: " + "; ".join(wrong))


def build_model(desc: dict[str, Any]) -> nn.Module:
  """The linen module a model description (model.json) describes; no 'kind' = an encoder."""
  common = dict(width=desc["width"], depth=desc["depth"], num_heads=desc["num_heads"],
                patch_size=desc["patch_size"], mlp_ratio=desc.get("mlp_ratio", 4.0),
                ln_eps=desc.get("ln_eps", LN_EPS), pos_embed=desc.get("pos_embed", "sincos"))
  kind = desc.get("kind", "encoder")
  if kind == "mae":
    return MAE(decoder_width=desc["decoder_width"], decoder_depth=desc["decoder_depth"],
               decoder_heads=desc["decoder_heads"], mask_ratio=desc["mask_ratio"],
               norm_pix_loss=desc["norm_pix_loss"], **common)
  if kind == "classifier":
    return Classifier(num_classes=desc["num_classes"], global_pool=desc["global_pool"], **common)
  if kind == "encoder":
    return Encoder(**common)
  raise ValueError(f"unknown model kind {kind!r}")


def abstract_params(model: nn.Module, image_size: int) -> dict[str, Any]:
  """Shapes of `model`'s params for square images of `image_size`, without computing them."""
  images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  rngs = {"params": jax.random.key(0), "masking": jax.random.key(1)}
  return jax.eval_shape(lambda: model.init(rngs, images))["params"]


# ----------------------------------------------------------------------------- import

def to_params(state: dict[str, np.ndarray], desc: dict[str, Any]) -> dict[str, Any]:
  """Official-named torch-layout state -> our params for `desc`.

  Raises one ValueError naming every missing, unexpected and mismatched key.
  """
  state = dict(state)
  grid = desc["image_size"] // desc["patch_size"]
  if desc.get("pos_embed", "sincos") == "learned":
    state[POS_EMBED] = resize_table(state[POS_EMBED], (grid, grid))
  else:
    state.pop(POS_EMBED, None)           # fixed: recomputed for the input's resolution
  state.pop(DECODER_POS_EMBED, None)     # checked in `describe`
  expected = traverse_util.flatten_dict(abstract_params(build_model(desc), desc["image_size"]),
                                        sep="/")
  names = {official_name(path): path for path in expected}
  missing = sorted(n for n in names if n not in state)
  unexpected = sorted(n for n in state if n not in names)
  params, wrong = {}, []
  for name, path in names.items():
    if name in state:
      value = from_torch(path, state[name])
      if value.shape != expected[path].shape:
        wrong.append(f"{name}: {tuple(state[name].shape)} (torch layout) does not give "
                     f"{expected[path].shape}")
      params[path] = value
  if missing or unexpected or wrong:
    raise ValueError(f"checkpoint does not fit the {desc.get('kind')} model {desc}: "
                     f"missing {missing or 'none'}; unexpected {unexpected or 'none'}; "
                     f"shape mismatches {wrong or 'none'}")
  return traverse_util.unflatten_dict(params, sep="/")


# ----------------------------------------------------------------------------- export

def to_official_state(desc: dict[str, Any], params: dict[str, Any]) -> dict[str, np.ndarray]:
  """Our params -> official names and torch layout, with the sin-cos tables official files carry."""
  flat = traverse_util.flatten_dict(params, sep="/")
  state = {official_name(path): to_torch(path, value) for path, value in flat.items()}
  grid = desc.get("image_size", 224) // desc["patch_size"]
  if POS_EMBED not in state:
    state[POS_EMBED] = sincos_2d(desc["width"], grid, cls_token=True)[None]
  if desc.get("kind") == "mae":
    state[DECODER_POS_EMBED] = sincos_2d(desc["decoder_width"], grid, cls_token=True)[None]
  return state


def hf_config(desc: dict[str, Any]) -> dict[str, Any]:
  """An HF ViTMAE config.json for an MAE or encoder description."""
  mae = desc.get("kind") == "mae"
  config = dict(
      model_type="vit_mae", architectures=["ViTMAEForPreTraining" if mae else "ViTMAEModel"],
      hidden_size=desc["width"], num_hidden_layers=desc["depth"],
      num_attention_heads=desc["num_heads"],
      intermediate_size=int(desc["width"] * desc.get("mlp_ratio", 4.0)), hidden_act="gelu",
      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.02,
      layer_norm_eps=desc.get("ln_eps", LN_EPS), image_size=desc.get("image_size", 224),
      patch_size=desc["patch_size"], num_channels=3, qkv_bias=True,
      mask_ratio=desc.get("mask_ratio", 0.75), norm_pix_loss=desc.get("norm_pix_loss", False))
  if mae:
    config.update(decoder_hidden_size=desc["decoder_width"],
                  decoder_num_hidden_layers=desc["decoder_depth"],
                  decoder_num_attention_heads=desc["decoder_heads"],
                  decoder_intermediate_size=int(desc["decoder_width"] * desc.get("mlp_ratio", 4.0)))
  return config


def save_pth(desc: dict[str, Any], params: dict[str, Any], path: str) -> None:
  """Writes {'model': state_dict} in the official layout (what models_mae / timm load)."""
  torch = _torch()
  state = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in
           to_official_state(desc, params).items()}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  torch.save({"model": state}, path)


def save_hf(desc: dict[str, Any], params: dict[str, Any], directory: str) -> None:
  """Writes an HF hub directory (config.json + model.safetensors) for an MAE or an encoder."""
  if desc.get("kind", "encoder") not in ("mae", "encoder"):
    raise ValueError("HF ViTMAE has no classifier with mean pooling + fc_norm; export a "
                     "classifier with --format pth (timm's VisionTransformer loads it)")
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  prefix = "vit." if desc.get("kind") == "mae" else ""
  state = official_to_hf(to_official_state(desc, params), prefix)
  os.makedirs(directory, exist_ok=True)
  save_file({k: np.ascontiguousarray(v, np.float32) for k, v in state.items()},
            os.path.join(directory, HF_SAFETENSORS), metadata={"format": "pt"})
  with open(os.path.join(directory, HF_CONFIG), "w") as f:
    json.dump(hf_config(desc), f, indent=2)
