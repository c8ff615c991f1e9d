"""Official weights in and out: parity with HF ViTMAE and timm, both file formats, round trips.

References run in PyTorch (CPU, fp32) with every weight perturbed, so a converter
that drops, transposes or mixes up one cannot pass.
"""

import dataclasses
import functools
import pickle
import re
import shutil
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

from mae_jax import checkpoint, convert, torch_format, weights
from mae_jax.tasks import base, images
from tests.helpers import load_config

torch.set_num_threads(1)


def _stub_torchvision() -> None:
  """timm imports torchvision at module level, and PyPI's torchvision does not import beside
  the CPU torch we test with. No torchvision code runs in a ViT forward, so inert stand-in
  modules let the real timm VisionTransformer import."""
  class Anything(type):
    def __getattr__(cls, name):
      if name.startswith("__"):
        raise AttributeError(name)
      return Anything(name, (), {})

  class Module(types.ModuleType):
    __path__: list[str] = []

    def __getattr__(self, name):
      if name.startswith("__"):
        raise AttributeError(name)
      return Anything(name, (), {})

  class Finder:
    def find_spec(self, name, path, target=None):
      import importlib.machinery  # pylint: disable=g-import-not-at-top
      if name.split(".")[0] == "torchvision":
        return importlib.machinery.ModuleSpec(name, self, is_package=True)
      return None

    def create_module(self, spec):
      return Module(spec.name)

    def exec_module(self, module):
      pass

  try:
    import torchvision  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except Exception:  # pylint: disable=broad-except  (absent, or present and broken)
    sys.modules.pop("torchvision", None)
    sys.meta_path.insert(0, Finder())


_stub_torchvision()
from timm.models.vision_transformer import VisionTransformer  # noqa: E402


def _perturb(module: torch.nn.Module, seed: int) -> None:
  """Adds noise to every trainable tensor: biases, norm scales and offsets included."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for _, p in module.named_parameters():
      if p.requires_grad:
        p.add_(0.2 * torch.randn(p.shape, generator=gen))


def _hf_table(dim: int, grid: int) -> torch.Tensor:
  """HF's own fixed table in the released checkpoints' layout (its initialize_weights' rotation)."""
  t = build_2d_sinusoidal_position_embedding(grid, grid, dim, cls_token=True)
  half = dim // 2
  return torch.cat([t[..., half:], t[..., :half]], dim=-1)[None]


def _hf_mae(v: dict, image_size: int, seed: int) -> ViTMAEForPreTraining:
  cfg = ViTMAEConfig(
      hidden_size=v["width"], num_hidden_layers=v["depth"], num_attention_heads=v["heads"],
      intermediate_size=4 * v["width"], decoder_hidden_size=v["dec_width"],
      decoder_num_hidden_layers=v["dec_depth"], decoder_num_attention_heads=v["dec_heads"],
      decoder_intermediate_size=4 * v["dec_width"], image_size=image_size, patch_size=v["patch"],
      mask_ratio=v["mask_ratio"], norm_pix_loss=v["norm_pix"], layer_norm_eps=v["eps"])
  torch.manual_seed(seed)
  model = ViTMAEForPreTraining(cfg).eval()
  _perturb(model, seed)
  grid = image_size // v["patch"]
  with torch.no_grad():   # transformers 5 leaves these fixed tables zero in a fresh model
    model.vit.embeddings.position_embeddings.copy_(_hf_table(v["width"], grid))
    model.decoder.decoder_pos_embed.copy_(_hf_table(v["dec_width"], grid))
  return model


# The reference for the .pth format: HF's modules renamed to models_mae.py's names.
# (The encoder names are checked against timm's VisionTransformer, which models_mae builds on.)
_HF_BLOCK_TO_OFFICIAL = {"layernorm_before": "norm1", "layernorm_after": "norm2",
                         "attention.o_proj": "attn.proj", "mlp.fc1": "mlp.fc1",
                         "mlp.fc2": "mlp.fc2"}


def _official_state(hf: ViTMAEForPreTraining) -> dict[str, torch.Tensor]:
  sd = {k: v.detach().clone() for k, v in hf.state_dict().items()}
  out = {"cls_token": sd.pop("vit.embeddings.cls_token"),
         "pos_embed": sd.pop("vit.embeddings.position_embeddings"),
         "norm.weight": sd.pop("vit.layernorm.weight"), "norm.bias": sd.pop("vit.layernorm.bias"),
         "mask_token": sd.pop("decoder.mask_token")}
  for t in ("weight", "bias"):
    out[f"patch_embed.proj.{t}"] = sd.pop(f"vit.embeddings.patch_embeddings.projection.{t}")
  for name in list(sd):
    m = re.fullmatch(r"(vit\.layers|decoder\.decoder_layers)\.(\d+)\.attention\.q_proj\.(\w+)",
                     name)
    if m:
      base = f"{m.group(1)}.{m.group(2)}.attention"
      prefix = "blocks" if m.group(1) == "vit.layers" else "decoder_blocks"
      out[f"{prefix}.{m.group(2)}.attn.qkv.{m.group(3)}"] = torch.cat(
          [sd.pop(f"{base}.{p}_proj.{m.group(3)}") for p in "qkv"])
  for name, value in sd.items():
    m = re.fullmatch(r"(vit\.layers|decoder\.decoder_layers)\.(\d+)\.(.+)\.(weight|bias)", name)
    if m:
      prefix = "blocks" if m.group(1) == "vit.layers" else "decoder_blocks"
      out[f"{prefix}.{m.group(2)}.{_HF_BLOCK_TO_OFFICIAL[m.group(3)]}.{m.group(4)}"] = value
    else:
      out[name.removeprefix("decoder.")] = value
  return out


def _nchw(x: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@functools.cache
def _jitted(model):
  """One compilation per distinct model (linen modules compare and hash by their fields)."""
  return jax.jit(functools.partial(model.apply, train=False))


def _compare_mae(model, variables, hf: ViTMAEForPreTraining, images: np.ndarray,
                 noise: np.ndarray) -> None:
  with torch.no_grad():
    ref = hf(pixel_values=_nchw(images), noise=torch.from_numpy(noise))
  loss, pred, mask = _jitted(model)(variables, jnp.asarray(images), noise=jnp.asarray(noise))
  np.testing.assert_array_equal(np.asarray(mask), ref.mask.numpy())
  np.testing.assert_allclose(np.asarray(pred), ref.logits.numpy(), rtol=0, atol=1e-4)
  np.testing.assert_allclose(float(loss), ref.loss.item(), rtol=1e-5)


VARIANTS = {
    # Heads left to the official defaults (width / 64, decoder 16) in the .pth load.
    "w128_p8_default_heads": dict(image=32, patch=8, width=128, depth=2, heads=2, dec_width=64,
                                  dec_depth=1, dec_heads=16, mask_ratio=0.75, norm_pix=False,
                                  eps=1e-6),
    "w48_p4_normpix_m60": dict(image=24, patch=4, width=48, depth=3, heads=3, dec_width=32,
                               dec_depth=2, dec_heads=4, mask_ratio=0.6, norm_pix=True, eps=1e-6),
    "w32_p2_hf_eps_m90": dict(image=16, patch=2, width=32, depth=1, heads=4, dec_width=16,
                              dec_depth=2, dec_heads=2, mask_ratio=0.9, norm_pix=True, eps=1e-12),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_mae_matches_hf_vitmae_from_both_formats(name, tmp_path):
  v = VARIANTS[name]
  hf = _hf_mae(v, v["image"], seed=len(name))
  hf.save_pretrained(tmp_path / "hf")
  torch.save({"model": _official_state(hf)}, tmp_path / "mae_visualize.pth")
  rng = np.random.RandomState(0)
  images = rng.randn(3, v["image"], v["image"], 3).astype(np.float32)
  noise = rng.rand(3, (v["image"] // v["patch"]) ** 2).astype(np.float32)

  model, variables = weights.load_torch(str(tmp_path / "hf"))
  assert (model.num_heads, model.decoder_heads, model.ln_eps) == (v["heads"], v["dec_heads"],
                                                                  v["eps"])
  _compare_mae(model, variables, hf, images, noise)

  # The older hub layout: pytorch_model.bin (HF's in-memory names) beside the same config.json.
  (tmp_path / "hf_bin").mkdir()
  shutil.copy(tmp_path / "hf" / "config.json", tmp_path / "hf_bin")
  torch.save(hf.state_dict(), tmp_path / "hf_bin" / "pytorch_model.bin")
  model_bin, variables_bin = weights.load_torch(str(tmp_path / "hf_bin"))
  assert model_bin == model
  jax.tree.map(np.testing.assert_array_equal, variables_bin, variables)

  # .pth: no config, so head counts and loss settings come from defaults and overrides.
  default_heads = v["heads"] == v["width"] // 64 and v["dec_heads"] == 16
  model, variables = weights.load_torch(
      str(tmp_path / "mae_visualize.pth"), mask_ratio=v["mask_ratio"],
      norm_pix_loss=v["norm_pix"], ln_eps=v["eps"],
      num_heads=None if default_heads else v["heads"],
      decoder_heads=None if default_heads else v["dec_heads"])
  assert (model.num_heads, model.decoder_heads) == (v["heads"], v["dec_heads"])
  _compare_mae(model, variables, hf, images, noise)


def test_official_encoder_names_are_timms():
  v = VARIANTS["w48_p4_normpix_m60"]
  state = _official_state(_hf_mae(v, v["image"], seed=0))
  encoder = {k: t for k, t in state.items() if not re.match(r"decoder_|mask_token", k)}
  vit = VisionTransformer(img_size=v["image"], patch_size=v["patch"], embed_dim=v["width"],
                          depth=v["depth"], num_heads=v["heads"], num_classes=0,
                          global_pool="token")
  vit.load_state_dict(encoder, strict=True)


def test_pretrained_encoder_runs_at_another_resolution(tmp_path):
  """Fixed sin-cos tables are recomputed: at 48 px we match an HF model built for 48 px."""
  v = VARIANTS["w48_p4_normpix_m60"]
  hf32 = _hf_mae(v, 32, seed=3)
  torch.save({"model": _official_state(hf32)}, tmp_path / "mae.pth")
  hf48 = _hf_mae(v, 48, seed=3)
  state = {k: t for k, t in hf32.state_dict().items() if "pos" not in k}
  assert not hf48.load_state_dict(state, strict=False).unexpected_keys
  model, variables = weights.load_torch(str(tmp_path / "mae.pth"), num_heads=v["heads"],
                                        decoder_heads=v["dec_heads"], mask_ratio=v["mask_ratio"],
                                        norm_pix_loss=True)
  rng = np.random.RandomState(1)
  images = rng.randn(2, 48, 48, 3).astype(np.float32)
  _compare_mae(model, variables, hf48, images, rng.rand(2, 144).astype(np.float32))


def _timm_classifier(image: int, patch: int, width: int, depth: int, heads: int,
                     classes: int, seed: int) -> VisionTransformer:
  torch.manual_seed(seed)
  vit = VisionTransformer(img_size=image, patch_size=patch, embed_dim=width, depth=depth,
                          num_heads=heads, num_classes=classes, global_pool="avg",
                          fc_norm=True).eval()
  _perturb(vit, seed)   # pos_embed too: fine-tuned checkpoints train it
  return vit


@pytest.mark.parametrize("image,patch,width,depth,heads", [(32, 8, 64, 2, 2), (24, 4, 128, 1, 2)])
def test_finetuned_classifier_matches_timm(image, patch, width, depth, heads, tmp_path):
  vit = _timm_classifier(image, patch, width, depth, heads, classes=7, seed=image)
  torch.save({"model": vit.state_dict()}, tmp_path / "mae_finetuned.pth")
  model, variables = weights.load_torch(str(tmp_path / "mae_finetuned.pth"), num_heads=heads)
  assert model.pos_embed == "learned" and model.global_pool
  x = np.random.RandomState(2).randn(4, image, image, 3).astype(np.float32)
  with torch.no_grad():
    ref = vit(_nchw(x)).numpy()
  np.testing.assert_allclose(np.asarray(jax.jit(model.apply)(variables, jnp.asarray(x))), ref,
                             rtol=0, atol=1e-4)

  # Another resolution: the learned table is resized (cls row kept), the model runs.
  model, variables = weights.load_torch(str(tmp_path / "mae_finetuned.pth"), num_heads=heads,
                                        image_size=2 * image)
  table = variables["params"]["encoder"]["pos_embed"]
  assert table.shape == (1, 1 + (2 * image // patch) ** 2, width)
  np.testing.assert_array_equal(np.asarray(table[0, 0]), vit.pos_embed[0, 0].detach().numpy())
  logits = jax.jit(model.apply)(variables, jnp.zeros((1, 2 * image, 2 * image, 3)))
  assert logits.shape == (1, 7) and np.isfinite(np.asarray(logits)).all()


def _tiny_mae_params(seed: int) -> tuple[dict, dict]:
  desc = dict(kind="mae", width=32, depth=2, num_heads=2, patch_size=4, mlp_ratio=4.0,
              image_size=16, ln_eps=1e-6, pos_embed="sincos", decoder_width=32,
              decoder_depth=1, decoder_heads=4, mask_ratio=0.75, norm_pix_loss=True)
  model = torch_format.build_model(desc)
  params = jax.jit(model.init)({"params": jax.random.key(seed), "masking": jax.random.key(1)},
                               jnp.zeros((1, 16, 16, 3)))["params"]
  # Random init leaves biases at 0 and norm scales at 1: perturb every leaf.
  rng = np.random.RandomState(seed)
  return desc, jax.tree.map(lambda p: np.asarray(p) + rng.normal(0, 0.2, p.shape).astype(
      np.float32), params)


def test_export_round_trips_and_hf_loads_it(tmp_path):
  desc, params = _tiny_mae_params(0)
  torch_format.save_pth(desc, params, str(tmp_path / "out.pth"))
  torch_format.save_hf(desc, params, str(tmp_path / "hf"))
  for path in (tmp_path / "out.pth", tmp_path / "hf"):
    loaded_desc, loaded = weights.load(str(path), norm_pix_loss=True, num_heads=2,
                                       decoder_heads=4)
    assert loaded_desc == desc, path
    jax.tree.map(np.testing.assert_array_equal, loaded, params)

  # transformers itself loads the exported directory, every weight, and computes what we do.
  hf, info = ViTMAEForPreTraining.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
  assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
  rng = np.random.RandomState(3)
  images, noise = rng.randn(2, 16, 16, 3).astype(np.float32), rng.rand(2, 16).astype(np.float32)
  _compare_mae(torch_format.build_model(desc), {"params": params}, hf.eval(), images, noise)


def test_classifier_export_loads_into_timm(tmp_path):
  vit = _timm_classifier(16, 4, 64, 2, 1, classes=5, seed=5)
  torch.save({"model": vit.state_dict()}, tmp_path / "in.pth")
  convert.main(["--input", str(tmp_path / "in.pth"), "--output", str(tmp_path / "export")])
  convert.main(["--input", str(tmp_path / "export"), "--output", str(tmp_path / "out.pth"),
                "--format", "pth"])
  back = torch.load(tmp_path / "out.pth", weights_only=True)["model"]
  assert set(back) == set(vit.state_dict())
  for k, t in vit.state_dict().items():
    torch.testing.assert_close(back[k], t, rtol=0, atol=0, msg=k)
  with pytest.raises(ValueError, match="no classifier"):
    convert.convert(str(tmp_path / "export"), str(tmp_path / "hf"), "hf")


@pytest.mark.slow
def test_cli_export_is_what_init_from_reads(tmp_path):
  v = dict(VARIANTS["w128_p8_default_heads"], width=64, depth=1, heads=1, dec_width=32)
  hf = _hf_mae(v, 32, seed=9)
  hf.save_pretrained(tmp_path / "hf")
  export = str(tmp_path / "export")
  convert.main(["--input", str(tmp_path / "hf"), "--output", export])
  params, desc = weights.restore_export(export)
  assert desc["kind"] == "mae" and desc["num_heads"] == 1 and desc["image_size"] == 32

  config = load_config("pets.py", f"init={export}")
  assert config.stages == "linprobe,finetune"
  config.model.variant, config.data.image_size, config.model.dtype = "mu/8", 32, "float32"
  config.model.update(decoder_width=64, decoder_depth=1)
  with pytest.raises(ValueError, match="shape mismatches"):   # mu is 32 wide, the export 64
    images.classifier_task(config, "finetune", 3, "unused").init(
        jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
  for stage in ("linprobe", "finetune"):
    task = images.classifier_task(config, stage, 3, "unused")
    task = dataclasses.replace(task, model=task.model.clone(width=64, depth=1, num_heads=1))
    variables = task.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
    np.testing.assert_array_equal(variables["params"]["encoder"]["blocks_0"]["mlp"]["fc2"]["bias"],
                                  params["encoder"]["blocks_0"]["mlp"]["fc2"]["bias"])


def test_bad_checkpoints_give_one_clear_error(tmp_path):
  vit = _timm_classifier(16, 4, 64, 1, 1, classes=3, seed=1)
  state = vit.state_dict()
  state["blocks.0.attn.proj.weight"] = state["blocks.0.attn.proj.weight"][:, :32]
  del state["blocks.0.mlp.fc2.bias"]
  state["blocks.0.extra"] = torch.zeros(2)
  torch.save({"model": state}, tmp_path / "bad.pth")
  with pytest.raises(ValueError) as err:
    weights.load_torch(str(tmp_path / "bad.pth"))
  for key in ("missing ['blocks.0.mlp.fc2.bias']", "unexpected ['blocks.0.extra']",
              "blocks.0.attn.proj.weight: (64, 32)"):
    assert key in str(err.value)


class _Evil:
  def __reduce__(self):
    return (print, ("code from a pickle ran",))


def test_pickles_cannot_run_code(tmp_path):
  with open(tmp_path / "evil.pth", "wb") as f:
    pickle.dump({"model": {}, "payload": _Evil()}, f, protocol=2)
  with pytest.raises(pickle.UnpicklingError):
    weights.load_torch(str(tmp_path / "evil.pth"))


def test_our_pretrain_export_goes_to_timm_and_hf(tmp_path):
  """An encoder exported by our pretrain stage (model.json without 'kind') -> .pth and HF."""
  config = load_config("digits.py", "smoke")
  desc = base.model_description(config)
  encoder = torch_format.build_model(desc)
  size = desc["image_size"]
  x = np.random.RandomState(4).randn(2, size, size, 3).astype(np.float32)
  params = jax.jit(encoder.init)(jax.random.key(0), jnp.asarray(x))["params"]
  params = jax.tree.map(lambda p: np.asarray(p) + np.float32(0.1), params)  # no 0 bias, no 1 scale
  checkpoint.export_params(str(tmp_path / "export"), params, desc)
  convert.main(["--input", str(tmp_path / "export"), "--output", str(tmp_path / "enc.pth"),
                "--format", "pth"])
  vit = VisionTransformer(img_size=size, patch_size=desc["patch_size"], embed_dim=desc["width"],
                          depth=desc["depth"], num_heads=desc["num_heads"], num_classes=0,
                          global_pool="token").eval()
  vit.load_state_dict(torch.load(tmp_path / "enc.pth", weights_only=True)["model"], strict=True)
  tokens, _, _ = jax.jit(encoder.apply)({"params": params}, jnp.asarray(x))
  with torch.no_grad():
    np.testing.assert_allclose(np.asarray(tokens[:, 0]), vit(_nchw(x)).numpy(), atol=1e-4)

  convert.main(["--input", str(tmp_path / "export"), "--output", str(tmp_path / "hf"),
                "--format", "hf"])
  _, info = ViTMAEModel.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
  assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
