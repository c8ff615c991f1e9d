"""Parameter names and layouts: mae_jax <-> official PyTorch MAE <-> HF transformers ViTMAE.

Pure numpy. Our layer names were chosen after the official release, so an
official name is ours with '.' for '/' and 'weight' for kernel/scale; what
differs is the layout (torch Linear is (out, in), a conv (out, in, kh, kw)).
HF ViTMAE renames every layer and splits the fused qkv into query/key/value;
`hf_to_official` / `official_to_hf` translate those names only.

HF names come in three spellings: the hub's (`vit.encoder.layer.N.attention.
attention.query`, `decoder.decoder_layers.N...`), what transformers 5 writes
(the decoder's as `decoder.decoder_encoder.layer.N`) and its in-memory one
(`vit.layers.N.attention.q_proj`, `mlp.fc1`). All three are read; the hub's is written.
"""

import re

import numpy as np

# Fixed sin-cos tables in every MAE checkpoint: checked against ours, never loaded as weights
# (except an encoder `pos_embed` that training changed: see torch_format.py).
POS_EMBED, DECODER_POS_EMBED = "pos_embed", "decoder_pos_embed"


def official_name(path: str) -> str:
  """'encoder/blocks_3/attn/qkv/kernel' -> 'blocks.3.attn.qkv.weight' (the module prefix goes)."""
  parts = path.split("/")
  if parts[0] in ("encoder", "decoder") and len(parts) > 1:
    parts = parts[1:]
  parts = [re.sub(r"^((?:decoder_)?blocks)_(\d+)$", r"\1.\2", p) for p in parts]
  if parts[0] == "patch_embed":
    parts[0] = "patch_embed.proj"
  if parts[-1] in ("kernel", "scale"):
    parts[-1] = "weight"
  return ".".join(parts)


def to_torch(path: str, value: np.ndarray) -> np.ndarray:
  """One of our arrays in the torch layout of the same weight."""
  value = np.asarray(value, np.float32)
  if path.endswith("kernel") and value.ndim == 4:   # conv (kh, kw, in, out) -> (out, in, kh, kw)
    return np.ascontiguousarray(value.transpose(3, 2, 0, 1))
  if path.endswith("kernel") and value.ndim == 2:   # dense (in, out) -> (out, in)
    return np.ascontiguousarray(value.T)
  return value


def from_torch(path: str, value: np.ndarray) -> np.ndarray:
  """Inverse of `to_torch`: a torch-layout array for our parameter `path`."""
  value = np.asarray(value, np.float32)
  if path.endswith("kernel") and value.ndim == 4:
    return np.ascontiguousarray(value.transpose(2, 3, 1, 0))
  if path.endswith("kernel") and value.ndim == 2:
    return np.ascontiguousarray(value.T)
  return value


# (official, HF) name pieces. Inside a block:
_BLOCK = (("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
          ("attn.proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"),
          ("mlp.fc2", "output.dense"))
# Outside the blocks (encoder side; the decoder's keep their names under 'decoder.'):
_TOP = (("cls_token", "embeddings.cls_token"), ("pos_embed", "embeddings.position_embeddings"),
        ("patch_embed.proj", "embeddings.patch_embeddings.projection"), ("norm", "layernorm"))
# Newer transformers spellings inside a block, read only.
_BLOCK_READ = _BLOCK + (("attn.proj", "attention.o_proj"), ("mlp.fc1", "mlp.fc1"),
                        ("mlp.fc2", "mlp.fc2"))
_QKV = ("query", "key", "value")
_HF_BLOCK = re.compile(r"(encoder\.layer|layers|decoder\.decoder_layers|"
                       r"decoder\.decoder_encoder\.layer)\.(\d+)\.(.+)")
_HF_QKV = re.compile(r"attention\.(?:attention\.(query|key|value)|([qkv])_proj)\.(weight|bias)")


def _swap(name: str, pairs: tuple[tuple[str, str], ...], forward: bool) -> str | None:
  for official, hf in pairs:
    src, dst = (official, hf) if forward else (hf, official)
    if name == src or name.startswith(src + "."):
      return dst + name[len(src):]
  return None


def official_to_hf(state: dict[str, np.ndarray], encoder_prefix: str) -> dict[str, np.ndarray]:
  """Official names -> HF ViTMAE names; `encoder_prefix` is 'vit.' for ViTMAEForPreTraining.

  Raises KeyError on a name HF's ViTMAE has no place for (e.g. a classifier head).
  """
  out = {}
  for name, value in state.items():
    m = re.fullmatch(r"(decoder_)?blocks\.(\d+)\.(.+)", name)
    if m:
      dec, i, rest = m.groups()
      base = f"decoder.decoder_layers.{i}." if dec else f"{encoder_prefix}encoder.layer.{i}."
      if rest.startswith("attn.qkv."):
        for part, chunk in zip(_QKV, np.split(value, 3, axis=0)):
          out[f"{base}attention.attention.{part}.{rest.rsplit('.', 1)[1]}"] = chunk
        continue
      new = _swap(rest, _BLOCK, forward=True)
      if new is None:
        raise KeyError(f"{name}: no HF ViTMAE counterpart")
      out[base + new] = value
    elif name.startswith("decoder_") or name == "mask_token":
      out["decoder." + name] = value
    else:
      new = _swap(name, _TOP, forward=True)
      if new is None:
        raise KeyError(f"{name}: no HF ViTMAE counterpart")
      out[encoder_prefix + new] = value
  return out


def hf_to_official(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """HF ViTMAE names (with or without 'vit.') -> official names, query/key/value fused to qkv.

  A name it does not know passes through unchanged, so the caller's key check names it.
  """
  out, qkv = {}, {}
  for name, value in state.items():
    name = name.removeprefix("vit.")
    m = _HF_BLOCK.fullmatch(name)
    if m:
      where, i, rest = m.groups()
      base = f"decoder_blocks.{i}." if where.startswith("decoder") else f"blocks.{i}."
      q = _HF_QKV.fullmatch(rest)
      if q:
        part = q.group(1) or {"q": "query", "k": "key", "v": "value"}[q.group(2)]
        qkv.setdefault(f"{base}attn.qkv.{q.group(3)}", {})[part] = value
        continue
      new = _swap(rest, _BLOCK_READ, forward=False)
      out[base + (new or rest)] = value
    elif name.startswith("decoder."):
      out[name.removeprefix("decoder.")] = value
    else:
      out[_swap(name, _TOP, forward=False) or name] = value
  for name, parts in qkv.items():
    if set(parts) != set(_QKV):
      missing = ", ".join(p for p in _QKV if p not in parts)
      raise KeyError(f"{name}: the checkpoint lacks the {missing} projection(s)")
    out[name] = np.concatenate([parts[p] for p in _QKV], axis=0)
  return out
