"""UNETR (models/unetr.py) against MONAI's, Dice + CE (losses.dice_ce_loss) against MONAI's
DiceCELoss, and the UNETR's shapes, gradients, validation and MAE-export loading."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from mae_jax import losses, weights
from mae_jax.errors import ConfigError
from mae_jax.models import MAE, UNETR, from_variant
from mae_jax.models.segmenter import Upsample2x
from mae_jax.models import unetr
from mae_jax.models.unetr import TappedEncoder, check_feature_blocks, instance_norm

torch = pytest.importorskip("torch")
monai_nets = pytest.importorskip("monai.networks.nets")
monai_losses = pytest.importorskip("monai.losses")

# A small ViT for MONAI's fixed 12 blocks and 16^3 patches (a 32^3 volume is 2x2x2 tokens); its
# width a multiple of 6, so the 3-D sin-cos table has no zero channels.
WIDTH, HEADS, FEATURES, CLASSES = 48, 2, 4, 3
MONAI_TAPS = (4, 7, 10, 12)   # hidden_states_out[3], [6], [9], then the normed last output


def _random_params(model: UNETR, x: np.ndarray, seed: int = 0) -> dict:
  """Parameters shaped as model.init makes them, drawn in numpy: compiling init costs ~10 s
  on a CPU (an RNG program per parameter), longer than the rest of this file."""
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = path[-1].key
    if name == "scale":
      return (1.0 + 0.1 * rng.standard_normal(s.shape)).astype(np.float32)
    std = 1.0 / np.sqrt(np.prod(s.shape[:-1])) if name == "kernel" else 0.02
    return (std * rng.standard_normal(s.shape)).astype(np.float32)

  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _monai_to_flax(state_dict: dict) -> dict[str, np.ndarray]:
  """MONAI UNETR decoder weights -> {our flat param path: array}, the ViT's ("vit.") left out.

  Names: encoder2.blocks.0.1.conv1.conv.weight -> encoder2/blocks_0_1/conv1/kernel (MONAI's
  Convolution wraps the torch conv as `.conv`, UnetrBasicBlock its UnetResBlock as `.layer`).
  """
  out = {}
  for key, value in state_dict.items():
    if key.startswith("vit."):
      continue
    name, leaf = key.rsplit(".", 1)
    name = name.removesuffix(".conv").replace(".layer.", ".")
    name = "out" if name == "out.conv" else name
    name = re.sub(r"blocks\.(\d+)\.(\d+)", r"blocks_\1_\2", name)
    value = value.detach().numpy()
    if leaf == "weight":
      transposed = "transp_conv" in name or re.search(r"blocks_\d+_0$", name)
      # ConvTranspose3d (in, out, k...) / Conv3d (out, in, k...) -> flax (k..., in, out).
      value = value.transpose(2, 3, 4, 0, 1) if transposed else value.transpose(2, 3, 4, 1, 0)
    out["/".join(name.split(".") + ["kernel" if leaf == "weight" else "bias"])] = value
  return out


def test_upsample2x_and_instance_norm_in_3d_are_torch_s():
  conv = torch.nn.ConvTranspose3d(5, 3, kernel_size=2, stride=2, bias=False)
  x = np.random.default_rng(2).normal(size=(2, 4, 3, 2, 5)).astype(np.float32)
  kernel = conv.weight.detach().numpy().transpose(2, 3, 4, 0, 1)
  got = Upsample2x(3, use_bias=False).apply({"params": {"kernel": kernel}}, jnp.asarray(x))
  with torch.no_grad():
    expected = conv(torch.from_numpy(x).permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
  np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
  expected = torch.nn.InstanceNorm3d(5)(torch.from_numpy(x).permute(0, 4, 1, 2, 3))
  np.testing.assert_allclose(instance_norm(jnp.asarray(x)),
                             expected.permute(0, 2, 3, 4, 1).numpy(), atol=1e-5)


@pytest.mark.parametrize("in_channels", [1, 4])   # 4 = feature_size: encoder1 without conv3
def test_unetr_matches_monai(in_channels):
  torch.manual_seed(0)
  theirs = monai_nets.UNETR(in_channels=in_channels, out_channels=CLASSES, img_size=(32,) * 3,
                            feature_size=FEATURES, hidden_size=WIDTH, mlp_dim=4 * WIDTH,
                            num_heads=HEADS, norm_name="instance", res_block=True).eval()
  ours = UNETR(WIDTH, 12, HEADS, 16, num_classes=CLASSES, feature_size=FEATURES,
               feature_blocks=MONAI_TAPS)
  x = np.random.default_rng(0).standard_normal((2, 32, 32, 32, in_channels)).astype(np.float32)
  flat = traverse_util.flatten_dict(_random_params(ours, x), sep="/")
  copied = _monai_to_flax(theirs.state_dict())
  assert set(copied) == {k for k in flat if not k.startswith("encoder/")}
  for k, v in copied.items():
    assert v.shape == flat[k].shape, k
  params = traverse_util.unflatten_dict({**flat, **copied}, sep="/")

  # MONAI's ViT sees our encoder's features: taps 4, 7, 10 before the final norm, 12 after it,
  # patch tokens in the row-major grid order its proj_feat reshapes.
  tapped = TappedEncoder(WIDTH, 12, HEADS, 16).apply({"params": params["encoder"]}, x,
                                                     features=MONAI_TAPS)
  tokens = [torch.from_numpy(np.array(t[:, 1:])) for t in tapped]
  hidden = [None] * 12
  hidden[3], hidden[6], hidden[9] = tokens[:3]
  theirs.vit.forward = lambda _: (tokens[3], hidden)
  with torch.no_grad():
    expected = theirs(torch.from_numpy(x).permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1).numpy()
  logits = ours.apply({"params": params}, x)   # eager: faster than compiling it once
  assert logits.dtype == jnp.float32 and logits.shape == (2, 32, 32, 32, CLASSES)
  np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


def test_dice_ce_loss_matches_monai():
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((3, 6, 5, 4, 4)).astype(np.float32)
  labels = rng.integers(0, 4, (3, 6, 5, 4))
  labels[0][labels[0] == 2] = 1    # class 2 absent from sample 0
  labels[1] = 0                    # sample 1: background only
  expected = monai_losses.DiceCELoss(to_onehot_y=True, softmax=True)(
      torch.from_numpy(logits).permute(0, 4, 1, 2, 3), torch.from_numpy(labels)[:, None])
  got = losses.dice_ce_loss(jnp.asarray(logits), jnp.asarray(labels), 4)
  np.testing.assert_allclose(got, expected.item(), rtol=1e-5, atol=1e-6)
  weighted = monai_losses.DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=0.3,
                                     lambda_ce=2.0)(
      torch.from_numpy(logits).permute(0, 4, 1, 2, 3), torch.from_numpy(labels)[:, None])
  np.testing.assert_allclose(
      losses.dice_ce_loss(jnp.asarray(logits), jnp.asarray(labels), 4, dice_weight=0.3,
                          ce_weight=2.0), weighted.item(), rtol=1e-5, atol=1e-6)


def test_unetr_patch8_shapes_and_gradients():
  # 8^3 patches: 3 levels, taps 1, 2 (skips) and 3 (the bottleneck) of a 3-block encoder.
  model = UNETR(WIDTH, 3, HEADS, 8, num_classes=CLASSES, feature_size=FEATURES,
                feature_blocks=(1, 2, 3))
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 16, 8, 1))
  labels = jax.random.randint(jax.random.PRNGKey(2), (2, 16, 16, 8), 0, CLASSES)
  params = _random_params(model, x)
  # The skips: block 1 upsampled twice (to 8 channels), block 2 once (16).
  assert params["encoder2"]["blocks_0_0"]["kernel"].shape == (2, 2, 2, 8, 8)
  assert "blocks_0_0" not in params["encoder3"]
  assert params["decoder4"]["transp_conv"]["kernel"].shape == (2, 2, 2, WIDTH, 16)
  assert set(params) == {"encoder", "encoder1", "encoder2", "encoder3", "decoder2", "decoder3",
                         "decoder4", "out"}

  @jax.jit
  def loss_and_grads(params):
    def loss_fn(p):
      logits = model.apply({"params": p}, x, train=True)
      return losses.dice_ce_loss(logits, labels, CLASSES), logits
    return jax.value_and_grad(loss_fn, has_aux=True)(params)

  (loss, logits), grads = loss_and_grads(params)
  assert logits.shape == (2, 16, 16, 8, CLASSES) and logits.dtype == jnp.float32
  assert np.isfinite(loss)
  for path, g in traverse_util.flatten_dict(grads, sep="/").items():
    assert np.all(np.isfinite(g)), path
    if path != "encoder/cls_token":   # the cls token is dropped before the decoder
      assert np.any(g != 0), path


def test_feature_blocks_and_patch_validation():
  check_feature_blocks((3, 6, 9, 12), 16, 12)
  check_feature_blocks((1, 2, 2), 8, 2)          # a 2-block model may tap a block twice
  check_feature_blocks((1,), 2, 1)               # 2^3 patches: the bottleneck alone
  with pytest.raises(ConfigError, match="config.model.variant"):
    check_feature_blocks((3, 6, 9, 12), 12, 12)
  with pytest.raises(ConfigError, match="config.segment3d.feature_blocks"):
    check_feature_blocks((6, 9, 12), 16, 12)
  with pytest.raises(ConfigError, match="config.segment3d.feature_blocks.*last"):
    check_feature_blocks((3, 6, 9, 11), 16, 12)
  with pytest.raises(ConfigError, match="config.segment3d.feature_blocks"):
    check_feature_blocks((6, 3, 9, 12), 16, 12)
  with pytest.raises(ConfigError, match="config.segment3d.feature_blocks"):
    check_feature_blocks((0, 6, 9, 12), 16, 12)
  # The model checks before it builds anything; ConfigError is a ValueError.
  x = jnp.zeros((1, 16, 16, 16, 1))
  with pytest.raises(ValueError, match="config.segment3d.feature_blocks"):
    jax.eval_shape(UNETR(WIDTH, 3, HEADS, 8, num_classes=2).init, jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="config.model.variant"):
    jax.eval_shape(UNETR(WIDTH, 3, HEADS, 6, num_classes=2, feature_blocks=(1, 3)).init,
                   jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 12, 1)))


def test_unetr_loads_mae_encoder():
  # Ti/8: width 192, a multiple of 6 (3-D sin-cos thirds of sin-cos pairs), 12 blocks.
  x = jnp.zeros((1, 16, 16, 16, 1))
  mae = from_variant(MAE, "Ti/8", decoder_width=48, decoder_depth=1, decoder_heads=2)
  exported = jax.jit(mae.init)({"params": jax.random.PRNGKey(0),
                                "masking": jax.random.PRNGKey(1)}, x)["params"]["encoder"]
  exported = {k: v for k, v in exported.items() if k != "mask_token"}
  model = from_variant(UNETR, "Ti/8", num_classes=CLASSES, feature_blocks=(4, 8, 12))
  target = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
  loaded = weights.load_encoder(target, exported, "mae-export")
  # Every encoder weight, the final norm (the bottleneck's) included, comes from the export.
  for path, v in traverse_util.flatten_dict(exported, sep="/").items():
    np.testing.assert_array_equal(
        traverse_util.flatten_dict(loaded["encoder"], sep="/")[path], v)
  assert "norm" in loaded["encoder"]


@pytest.mark.parametrize("channels", [1, 5])
def test_conv_slices_equal_xla_convolution(channels):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 6, 5, 7, channels)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((3, 3, 3, channels, 4)), jnp.float32)
  ours = lambda kind: unetr.conv_same(x, kernel, kind)  # noqa: E731
  np.testing.assert_allclose(ours("slices"), ours("xla"), rtol=1e-5, atol=1e-5)
  grads = [jax.grad(lambda x, k: (unetr.conv_same(x, k, kind) ** 2).sum(), argnums=(0, 1))(
      x, kernel) for kind in ("slices", "xla")]
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
