"""Segmentation model: pooling and resizing as torch, UPerNet and FCN heads against HF
transformers' port of mmsegmentation's, the pyramid neck, the encoder's block outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax.models import Encoder, Segmenter, from_variant
from mae_jax import spatial
from mae_jax.errors import ConfigError
from mae_jax.models import segmenter

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _nchw(x):
  return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("hw", [(6, 6), (7, 9), (13, 5)])
@pytest.mark.parametrize("size", [1, 2, 3, 6])
def test_adaptive_avg_pool_matches_torch(hw, size):
  x = np.random.default_rng(0).normal(size=(2, *hw, 3)).astype(np.float32)
  want = _nhwc(F.adaptive_avg_pool2d(_nchw(x), size))
  np.testing.assert_allclose(spatial.adaptive_avg_pool(jnp.asarray(x), size), want, atol=1e-6)


@pytest.mark.parametrize("src,dst", [((3, 3), (8, 8)), ((2, 5), (7, 4)), ((8, 8), (32, 32)),
                                     ((9, 7), (4, 3))])
def test_resize_bilinear_matches_torch_interpolate(src, dst):
  x = np.random.default_rng(1).normal(size=(2, *src, 4)).astype(np.float32)
  want = _nhwc(F.interpolate(_nchw(x), size=dst, mode="bilinear", align_corners=False))
  np.testing.assert_allclose(spatial.resize_bilinear(jnp.asarray(x), dst), want, atol=1e-5)


def test_upsample2x_is_torch_conv_transpose():
  conv = torch.nn.ConvTranspose2d(5, 3, kernel_size=2, stride=2)
  x = np.random.default_rng(2).normal(size=(2, 4, 6, 5)).astype(np.float32)
  params = {"kernel": conv.weight.detach().numpy().transpose(2, 3, 0, 1),
            "bias": conv.bias.detach().numpy()}
  got = segmenter.Upsample2x(3).apply({"params": params}, jnp.asarray(x))
  np.testing.assert_allclose(got, _nhwc(conv(_nchw(x))), atol=1e-5)


def _conv_bn(module, prefix):
  """Our ConvBNReLU variables from an HF UperNetConvModule."""
  bn = module.batch_norm
  return ({f"{prefix}": {"conv": {"kernel": module.conv.weight.detach().numpy().transpose(2, 3, 1, 0)},
                         "bn": {"scale": bn.weight.detach().numpy(),
                                "bias": bn.bias.detach().numpy()}}},
          {f"{prefix}": {"bn": {"mean": bn.running_mean.numpy(), "var": bn.running_var.numpy()}}})


def _classifier(conv):
  return {"classify": {"conv_seg": {"kernel": conv.weight.detach().numpy().transpose(2, 3, 1, 0),
                                    "bias": conv.bias.detach().numpy()}}}


def _randomize(module):
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def _merge(*trees):
  out = {}
  for tree in trees:
    for k, v in tree.items():
      out[k] = _merge(out[k], v) if k in out and isinstance(v, dict) else v
  return out


def test_uper_and_fcn_heads_match_hf_transformers():
  from transformers import UperNetConfig  # pylint: disable=g-import-not-at-top
  from transformers.models.upernet import modeling_upernet as hf  # pylint: disable=g-import-not-at-top
  d, channels, classes = 8, 16, 5
  config = UperNetConfig(hidden_size=channels, num_labels=classes, auxiliary_channels=12,
                         auxiliary_in_channels=d)
  head, aux = hf.UperNetHead(config, in_channels=[d] * 4).eval(), hf.UperNetFCNHead(config,
                                                                                    [d] * 4).eval()
  _randomize(head)
  _randomize(aux)
  rng = np.random.default_rng(3)
  # Pyramid levels of a 7x9 patch grid: x4, x2, x1, x0.5 (floor).
  sizes = [(28, 36), (14, 18), (7, 9), (3, 4)]
  levels = [rng.normal(size=(2, *s, d)).astype(np.float32) for s in sizes]
  want = _nhwc(head([_nchw(x) for x in levels]))
  want_aux = _nhwc(aux([_nchw(x) for x in levels]))

  parts = [_conv_bn(b.layers[1], f"psp_{i}") for i, b in enumerate(head.psp_modules.blocks)]
  parts += [_conv_bn(head.bottleneck, "psp_bottleneck"), _conv_bn(head.fpn_bottleneck,
                                                                   "fpn_bottleneck")]
  parts += [_conv_bn(c, f"lateral_{i}") for i, c in enumerate(head.lateral_convs)]
  parts += [_conv_bn(c, f"fpn_{i}") for i, c in enumerate(head.fpn_convs)]
  params = _merge(*(p for p, _ in parts), _classifier(head.classifier))
  stats = _merge(*(s for _, s in parts))
  ours = segmenter.UPerHead(channels, classes)
  got = ours.apply({"params": params, "batch_stats": stats}, [jnp.asarray(x) for x in levels],
                   train=False)
  np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)

  p, s = _conv_bn(aux.convs[0], "conv_0")
  got_aux = segmenter.FCNHead(12, classes).apply(
      {"params": _merge(p, _classifier(aux.classifier)), "batch_stats": s},
      jnp.asarray(levels[2]), train=False)
  np.testing.assert_allclose(got_aux, want_aux, atol=2e-4, rtol=1e-4)


def test_encoder_block_outputs_are_its_hidden_states():
  enc = from_variant(Encoder, "mu/4")
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  variables = enc.init(jax.random.key(1), x)
  tokens, _, _ = enc.apply(variables, x)
  first, last = enc.apply(variables, x, features=(1, 2))
  assert first.shape == last.shape == (2, 17, 32)
  # The last block's output, normed, is what the encoder returns; the first differs from it.
  norm = variables["params"]["norm"]
  mean, var = last.mean(-1, keepdims=True), last.var(-1, keepdims=True)
  normed = (last - mean) / jnp.sqrt(var + 1e-6) * norm["scale"] + norm["bias"]
  np.testing.assert_allclose(normed, tokens, atol=1e-5)
  assert not np.allclose(first, last)
  with pytest.raises(ValueError, match="feature blocks \\[3\\]"):
    enc.apply(variables, x, features=(1, 3))


@pytest.mark.parametrize("neck", segmenter.NECKS)
def test_segmenter_shapes_and_training_state(neck):
  model = from_variant(Segmenter, "mu/4", num_classes=6, feature_blocks=(1, 2, 2, 2),
                       channels=16, aux_channels=8, neck=neck, neck_channels=16)
  x = jax.random.normal(jax.random.key(0), (2, 32, 24, 3))
  variables = jax.jit(lambda x: model.init({"params": jax.random.key(1),
                                            "dropout": jax.random.key(2)}, x))(x)
  logits, aux = model.apply(variables, x)
  # Logits at the x4 level (4 / patch of the input), the auxiliary ones at their level (x1).
  assert logits.shape == (2, 32, 24, 6) and aux.shape == (2, 8, 6, 6)
  assert logits.dtype == jnp.float32
  # Training updates the BatchNorm statistics (the feature2pyramid neck and the heads).
  (logits, aux), state = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                     rngs={"dropout": jax.random.key(3)})
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), variables["batch_stats"],
                         state["batch_stats"])
  assert all(jax.tree.leaves(changed))
  # The encoder's parameters are the MAE's: an MAE export loads into them.
  assert "blocks_0" in variables["params"]["encoder"]


@pytest.mark.parametrize("neck", segmenter.NECKS)
def test_segmenter_pyramid_levels(neck):
  """rescales (2, 1, 0.5): three levels, logits at x2 of the patch grid, aux still at x1."""
  model = from_variant(Segmenter, "mu/4", num_classes=5, feature_blocks=(1, 2, 2),
                       rescales=(2, 1, 0.5), channels=8, aux_channels=8, neck=neck,
                       neck_channels=8)
  x = jnp.zeros((1, 32, 24, 3))
  variables = jax.jit(lambda x: model.init({"params": jax.random.key(1),
                                            "dropout": jax.random.key(2)}, x))(x)
  logits, aux = model.apply(variables, x)
  assert logits.shape == (1, 16, 12, 5) and aux.shape == (1, 8, 6, 5)


def test_linear_head_is_batchnorm_and_a_1x1_on_the_tapped_tokens():
  """head="linear": logits on the patch grid = BN(concat of the tapped blocks) @ W + b, and
  nothing but the encoder and that head has parameters (no neck, no auxiliary head)."""
  model = from_variant(Segmenter, "mu/4", num_classes=5, feature_blocks=(1, 2), head="linear",
                       aux_channels=8)
  x = jax.random.normal(jax.random.key(0), (2, 32, 24, 3))
  variables = model.init({"params": jax.random.key(1)}, x)
  assert set(variables["params"]) == {"encoder", "decode_head"}
  logits, aux = model.apply(variables, x)
  assert logits.shape == (2, 8, 6, 5) and aux is None
  width = model.width
  enc = from_variant(Encoder, "mu/4")
  maps = enc.apply({"params": variables["params"]["encoder"]}, x, features=(1, 2))
  tokens = jnp.concatenate([m[:, 1:] for m in maps], -1).reshape(2, 8, 6, 2 * width)
  bn, stats = variables["params"]["decode_head"]["bn"], variables["batch_stats"]["decode_head"]["bn"]
  normed = (tokens - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-5) * bn["scale"] + bn["bias"]
  conv = variables["params"]["decode_head"]["classify"]["conv_seg"]
  want = normed @ conv["kernel"][0, 0] + conv["bias"]
  np.testing.assert_allclose(logits, want, atol=1e-4)
  # The loss resizes patch-grid logits to the label map, as it does UPerNet's.
  from mae_jax.losses import segmentation_loss  # pylint: disable=g-import-not-at-top
  assert np.isfinite(segmentation_loss(logits, jnp.zeros((2, 32, 24), jnp.int32)))


def test_segment_head_validated():
  from configs import digits_seg  # pylint: disable=g-import-not-at-top
  from mae_jax.tasks.segmentation import validate_segment  # pylint: disable=g-import-not-at-top
  config = digits_seg.get_config()
  config.segment.head = "mlp"
  with pytest.raises(ConfigError, match="config.segment.head must be 'upernet' or 'linear'"):
    validate_segment(config)
  # The linear head reads any number of blocks (not one per pyramid level), each in range.
  config.segment.head, config.segment.feature_blocks = "linear", (4,)
  validate_segment(config)
  config.segment.feature_blocks = (0, 4)
  with pytest.raises(ConfigError, match="linear head reads these blocks"):
    validate_segment(config)


def test_segment_rescales_validated():
  from configs import digits_seg  # pylint: disable=g-import-not-at-top
  from mae_jax.tasks.segmentation import validate_segment  # pylint: disable=g-import-not-at-top
  config = digits_seg.get_config()
  config.segment.rescales = (2, 4, 1)
  with pytest.raises(ConfigError, match="config.segment.rescales"):
    validate_segment(config)
  config.segment.rescales, config.segment.feature_blocks = (2, 1, 0.5), (1, 2, 3, 4)
  with pytest.raises(ConfigError, match="3 block numbers"):
    validate_segment(config)


def test_segmentation_loss_is_torch_cross_entropy_over_all_pixels():
  from mae_jax.losses import segmentation_loss  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
  labels = rng.integers(0, 3, size=(2, 8, 10))
  labels[0, :3] = 255
  up = F.interpolate(_nchw(logits), size=(8, 10), mode="bilinear", align_corners=False)
  per_pixel = F.cross_entropy(up, torch.from_numpy(labels), ignore_index=255, reduction="none")
  want = per_pixel.sum() / labels.size        # mmsegmentation: ignored pixels count as zero
  got = segmentation_loss(jnp.asarray(logits), jnp.asarray(labels))
  np.testing.assert_allclose(got, want.item(), rtol=1e-5)


def test_confusion_matrix_and_scores():
  from mae_jax import confusion  # pylint: disable=g-import-not-at-top
  labels = np.array([[0, 0, 1, 1, 255, 0], [1, 1, 1, 0, 255, 4]])
  pred = np.array([[0, 1, 1, 1, 2, 0], [1, 0, 1, 0, 0, 0]])
  m = np.asarray(confusion.confusion_matrix(jnp.asarray(pred), jnp.asarray(labels), 4))
  want = np.zeros((4, 4))
  for t, p in zip(labels.ravel(), pred.ravel()):
    if t < 4:
      want[t, p] += 1
  np.testing.assert_array_equal(m, want)
  # Padded batch slots weigh zero.
  half = confusion.confusion_matrix(jnp.asarray(pred), jnp.asarray(labels), 4,
                                    weight=jnp.asarray([1.0, 0.0])[:, None])
  assert float(half.sum()) == 5
  s = confusion.scores(m)
  # class 0: tp 3, truth 4, predicted 4 -> IoU 3/5; class 1: tp 4, truth 5, predicted 5 ->
  # 4/6; classes 2 and 3: no truth, no prediction -> left out.
  np.testing.assert_allclose(s["miou"], 100 * (3 / 5 + 4 / 6) / 2)
  np.testing.assert_allclose(s["pixel_acc"], 100 * 7 / 9)
  np.testing.assert_allclose(s["mean_acc"], 100 * (3 / 4 + 4 / 5) / 2)
  assert s["per_class_iou"][2] is None and s["per_class_iou"][3] is None
