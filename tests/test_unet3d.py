"""The U-Net baseline (models/unet3d.py) against MONAI's BasicUNet: the same logits from the same
weights, the same parameter count; its shapes and checks."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from mae_jax.models.unet3d import FEATURES, BasicUNet3D

torch = pytest.importorskip("torch")
monai_nets = pytest.importorskip("monai.networks.nets")

CLASSES = 3
SMALL = (4, 4, 8, 8, 16, 4)   # MONAI's shape (4 levels below the input) at a test's width


def _monai_to_flax(state_dict: dict) -> dict[str, np.ndarray]:
  """BasicUNet weights -> {our flat param path: array}: MONAI's wrappers (.convs of a Down,
  Convolution's .conv, ADN's .adn.N, UpSample's .deconv) dropped, torch layouts transposed."""
  out = {}
  for key, value in state_dict.items():
    name, leaf = key.rsplit(".", 1)
    name = re.sub(r"^(down_\d)\.convs\.", r"\1.", name)
    value = value.detach().numpy()
    if name.endswith(".adn.N"):
      name, leaf = name.removesuffix(".adn.N") + ".norm", {"weight": "scale"}.get(leaf, leaf)
      name = name.removesuffix(".norm")   # our norm's parameters sit on the ConvNormAct
    elif name.endswith(".upsample.deconv"):
      name = name.removesuffix(".deconv")
      # ConvTranspose3d (in, out, 2, 2, 2) -> (2, 2, 2, in, out)
      value = value.transpose(2, 3, 4, 0, 1) if leaf == "weight" else value
    elif leaf == "weight":   # Conv3d (out, in, k, k, k) -> (k, k, k, in, out)
      value = value.transpose(2, 3, 4, 1, 0)
    if leaf == "weight":
      leaf = "kernel"
    out["/".join(name.split(".") + [leaf])] = value
  return out


def _monai(features=SMALL, in_channels=1):
  torch.manual_seed(0)
  net = monai_nets.BasicUNet(spatial_dims=3, in_channels=in_channels, out_channels=CLASSES,
                             features=features).eval()
  with torch.no_grad():   # perturb every norm so scale and bias are tested, not just 1 and 0
    for name, p in net.named_parameters():
      if ".adn.N." in name:
        p.add_(0.1 * torch.randn_like(p))
  return net


@pytest.mark.parametrize("in_channels", [1, 2])
def test_basic_unet_matches_monai(in_channels):
  theirs = _monai(in_channels=in_channels)
  x = np.random.default_rng(1).standard_normal((2, 16, 32, 16, in_channels)).astype(np.float32)
  # XLA's 3-D convolution compiles faster than the CPU default's 2-D slices, which
  # tests/test_unetr.py checks give the same numbers.
  ours = BasicUNet3D(CLASSES, SMALL, conv="xla")
  shapes = jax.eval_shape(ours.init, jax.random.key(0), x)["params"]
  copied = _monai_to_flax(theirs.state_dict())
  flat = traverse_util.flatten_dict(shapes, sep="/")
  assert set(copied) == set(flat), (sorted(set(copied) ^ set(flat)))
  for k, v in flat.items():
    assert copied[k].shape == v.shape, k
  params = traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in copied.items()}, sep="/")
  got = np.asarray(jax.jit(ours.apply)({"params": params}, x))
  with torch.no_grad():
    want = theirs(torch.from_numpy(x.transpose(0, 4, 1, 2, 3))).numpy().transpose(0, 2, 3, 4, 1)
  assert got.shape == (2, 16, 32, 16, CLASSES)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_parameter_count_equals_monai_default():
  """MONAI's default widths (32, 32, 64, 128, 256, 32): 5,749,641 parameters for 9 classes."""
  shapes = jax.eval_shape(BasicUNet3D(9).init, jax.random.key(0),
                          jnp.zeros((1, 16, 16, 16, 1)))["params"]
  ours = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes))
  theirs = monai_nets.BasicUNet(spatial_dims=3, in_channels=1, out_channels=9, features=FEATURES)
  assert ours == sum(p.numel() for p in theirs.parameters()) == 5_749_641


def test_sides_and_features_are_checked():
  with pytest.raises(ValueError, match="multiples of 2"):
    jax.eval_shape(BasicUNet3D(2, SMALL).init, jax.random.key(0), jnp.zeros((1, 24, 16, 16, 1)))
  with pytest.raises(ValueError, match="at least 3"):
    jax.eval_shape(BasicUNet3D(2, (8, 8)).init, jax.random.key(0), jnp.zeros((1, 8, 8, 8, 1)))
  # Fewer levels: 2 poolings take sides that are multiples of 4.
  out = jax.eval_shape(lambda x: BasicUNet3D(2, (4, 8, 8, 4)).init_with_output(
      jax.random.key(0), x)[0], jnp.zeros((1, 12, 8, 4, 1)))
  assert out.shape == (1, 12, 8, 4, 2)
