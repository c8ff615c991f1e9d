"""Model structure: position embeddings, variants, init, masking in the encoder, classifiers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax.models import MAE, SIZES, Classifier, Encoder, decode_variant, from_variant
from mae_jax import masking
from mae_jax.models import vit
from mae_jax.models.posembed import sincos_2d

RNGS = {"params": jax.random.key(0), "masking": jax.random.key(1), "dropout": jax.random.key(2)}


def test_sincos_values():
  dim, gh, gw = 8, 2, 3
  table = sincos_2d(dim, (gh, gw), cls_token=True)
  assert table.shape == (1 + gh * gw, dim) and table.dtype == np.float32
  np.testing.assert_array_equal(table[0], 0)
  quarter = dim // 4
  for r in range(gh):
    for c in range(gw):
      row = []
      for pos in (c, r):   # first half encodes the column, second the row (official order)
        freqs = [1 / 10000 ** (k / quarter) for k in range(quarter)]
        row += [math.sin(pos * f) for f in freqs] + [math.cos(pos * f) for f in freqs]
      np.testing.assert_allclose(table[1 + r * gw + c], row, rtol=1e-6, atol=1e-7)


def test_decode_variant():
  v = decode_variant("B/16")
  assert (v.width, v.depth, v.num_heads, v.patch_size) == (768, 12, 12, 16)
  assert decode_variant("H/14").patch_size == 14
  for bad in ("B", "X/16", "B/x"):
    with pytest.raises(ValueError, match="unknown model variant"):
      decode_variant(bad)


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("variant,size", [("mu/4", 32), ("mini/4", 32), ("Ti/16", 224),
                                          ("S/16", 224), ("B/16", 224), ("L/16", 224),
                                          ("H/14", 224), ("B/8", 64), ("Ti/8", 64)])
def test_mae_shapes_every_variant(variant, size):
  model = from_variant(MAE, variant)
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(RNGS, x), x)
  loss, pred, mask = jax.eval_shape(
      lambda v, x: model.apply(v, x, rngs={"masking": jax.random.key(0)}), variables, x)
  v = decode_variant(variant)
  l = (size // v.patch_size) ** 2
  assert loss.shape == () and pred.shape == (2, l, v.patch_size**2 * 3) and mask.shape == (2, l)
  enc = variables["params"]["encoder"]
  assert enc["patch_embed"]["kernel"].shape == (v.patch_size, v.patch_size, 3, v.width)
  assert len([k for k in enc if k.startswith("blocks_")]) == v.depth
  # Encoder parameter counts of the published models (ViT-B 85.8M, L 303.3M, H/14 630.8M).
  published = {"B/16": 85.8e6, "L/16": 303.3e6, "H/14": 630.8e6}
  if variant in published:
    assert abs(_count(enc) - published[variant]) / published[variant] < 0.005


def test_init_matches_official_scheme():
  model = from_variant(MAE, "mu/4", decoder_width=32, decoder_depth=1, decoder_heads=2)
  params = jax.jit(model.init)(RNGS, jnp.zeros((1, 16, 16, 3)))["params"]
  enc = params["encoder"]
  qkv = enc["blocks_0"]["attn"]["qkv"]["kernel"]          # xavier-uniform on (32, 96)
  bound = math.sqrt(6 / (32 + 96))
  assert np.abs(qkv).max() <= bound and np.abs(qkv).max() > 0.8 * bound
  conv = enc["patch_embed"]["kernel"]                     # as a (32, 4*4*3) matrix
  bound = math.sqrt(6 / (48 + 32))
  assert np.abs(conv).max() <= bound and np.abs(conv).max() > 0.8 * bound
  np.testing.assert_array_equal(enc["blocks_0"]["attn"]["qkv"]["bias"], 0)
  np.testing.assert_array_equal(enc["norm"]["scale"], 1)
  for token in (enc["cls_token"], params["decoder"]["mask_token"]):
    assert 0.005 < float(np.std(token)) < 0.04
  assert "pos_embed" not in enc   # fixed, computed


def test_mae_masking_and_explicit_noise():
  model = from_variant(MAE, "mu/4", decoder_width=32, decoder_depth=1, decoder_heads=2,
                           mask_ratio=0.75, norm_pix_loss=True)
  x = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
  variables = jax.jit(model.init)(RNGS, x)
  apply = jax.jit(model.apply)
  noise = jax.random.uniform(jax.random.key(4), (2, 16))
  loss, pred, mask = apply(variables, x, noise=noise)
  np.testing.assert_array_equal(mask.sum(1), 12)
  np.testing.assert_array_equal(mask, np.argsort(np.argsort(noise, 1), 1) >= 4)
  loss2, pred2, _ = apply(variables, x, noise=noise)
  np.testing.assert_array_equal(pred, pred2)
  _, _, other = apply(variables, x, rngs={"masking": jax.random.key(9)})
  assert not np.array_equal(mask, other)
  assert np.isfinite(loss) and loss > 0


def test_encoder_sees_only_visible_patches():
  enc = from_variant(Encoder, "mu/4")
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.jit(enc.init)(RNGS, x)
  tokens, mask, ids = enc.apply(variables, x, mask_ratio=0.75, rngs={"masking": jax.random.key(0)})
  assert tokens.shape == (2, 1 + 16, 32) and mask.shape == (2, 64) and ids.shape == (2, 64)
  tokens, mask, ids = enc.apply(variables, x)
  assert tokens.shape == (2, 65, 32) and mask is None


def test_classifier_pooling_and_head_init():
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  ft = from_variant(Classifier, "mu/4", num_classes=7, global_pool=True, drop_path=0.1)
  params = jax.jit(ft.init)(RNGS, x)["params"]
  assert "fc_norm" in params and "norm" not in params["encoder"]
  assert float(np.std(params["head"]["kernel"])) < 1e-4      # std 2e-5
  assert ft.apply({"params": params}, x).shape == (2, 7)
  cls = from_variant(Classifier, "mu/4", num_classes=7, global_pool=False)
  assert "norm" in cls.init(RNGS, x)["params"]["encoder"]


def test_drop_path_is_random_in_training_only():
  model = from_variant(Classifier, "mu/4", num_classes=5, drop_path=0.5, head_init_std=1.0)
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  v = jax.jit(model.init)(RNGS, x)
  apply = jax.jit(model.apply, static_argnames="train")
  a = apply(v, x, train=True, rngs={"dropout": jax.random.key(1)})
  b = apply(v, x, train=True, rngs={"dropout": jax.random.key(2)})
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(apply(v, x), apply(v, x))


def test_linear_probe_freezes_encoder():
  model = from_variant(Classifier, "mu/4", num_classes=5, probe=True, global_pool=False,
                       head_init_std=0.01)
  x = jax.random.normal(jax.random.key(0), (8, 16, 16, 3))
  v = jax.jit(model.init)(RNGS, x)
  assert set(v["batch_stats"]["bn"]) == {"mean", "var"} and "bn" not in v["params"]

  def loss(params):
    logits, _ = model.apply({"params": params, "batch_stats": v["batch_stats"]}, x, train=True,
                            mutable=["batch_stats"])
    return jnp.sum(logits ** 2)

  grads = jax.jit(jax.grad(loss))(v["params"])
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["encoder"]))
  assert float(jnp.abs(grads["head"]["kernel"]).max()) > 0


def test_every_size_name_decodes():
  for size in SIZES:
    assert decode_variant(f"{size}/16").width == SIZES[size][0]


@pytest.mark.parametrize("pos_embed", ["sincos", "learned"])
def test_encoder_embeds_only_kept_patches_with_the_same_tokens(pos_embed):
  # The encoder gathers patches before embedding them; that must equal the official order
  # (embed every patch, add positions, then keep a subset), values and gradients alike.
  enc = vit.Encoder(width=16, depth=0, num_heads=2, patch_size=4, final_norm=False,
                    pos_embed=pos_embed)
  images = jax.random.normal(jax.random.key(0), (3, 16, 16, 3))
  noise = jax.random.uniform(jax.random.key(1), (3, 16))
  variables = enc.init(jax.random.key(2), images)

  def masked(v):
    return enc.apply(v, images, mask_ratio=0.75, noise=noise)

  def reference(v):
    full, _, _ = enc.apply(v, images)
    kept, mask, ids_restore = masking.random_masking(full[:, 1:], 0.75, noise)
    return jnp.concatenate([full[:, :1], kept], axis=1), mask, ids_restore

  for got, want in zip(masked(variables), reference(variables)):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  grads = [jax.grad(lambda v, f=f: jnp.sum(jnp.sin(f(v)[0])))(variables)
           for f in (masked, reference)]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), *grads)


def test_encoder_mask_tokens_replace_the_removed_patches():
  # The "w/ [M]" encoder sees all L tokens, in patch order; a removed patch's pixels must not
  # reach it (the mask token stands in), a kept patch's must.
  enc = vit.Encoder(width=16, depth=1, num_heads=2, patch_size=4, mask_tokens=True)
  images = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  noise = jax.random.uniform(jax.random.key(1), (2, 16))
  variables = enc.init(jax.random.key(2), images, mask_ratio=0.75, noise=noise)
  assert variables["params"]["mask_token"].shape == (1, 1, 16)
  apply = jax.jit(lambda x: enc.apply(variables, x, mask_ratio=0.75, noise=noise))
  tokens, mask, ids_restore = apply(images)
  assert tokens.shape == (2, 17, 16) and ids_restore is None
  np.testing.assert_array_equal(mask, np.argsort(np.argsort(noise, 1), 1) >= 4)
  removed = np.argwhere(np.asarray(mask[0]))[0, 0]
  kept = np.argwhere(~np.asarray(mask[0], bool))[0, 0]

  def changed(patch: int) -> jax.Array:
    row, col = divmod(int(patch), 4)
    return images.at[0, 4 * row:4 * row + 4, 4 * col:4 * col + 4].add(1.0)

  np.testing.assert_array_equal(apply(changed(removed))[0], tokens)
  assert not np.allclose(apply(changed(kept))[0], tokens)


@pytest.mark.parametrize("shape,patch", [((2, 24, 1), 4), ((2, 8, 8, 8, 1), 4)])
def test_mae_on_series_and_volumes(shape, patch):
  # One MAE for every rank: 1-D sin-cos positions over a series' patches, 3-D over a volume's.
  model = MAE(width=24, depth=1, num_heads=2, patch_size=patch, decoder_width=12,
              decoder_depth=1, decoder_heads=2, mask_ratio=0.5)
  x = jax.random.normal(jax.random.key(0), shape)
  variables = model.init(RNGS, x)
  loss, pred, mask = model.apply(variables, x, rngs={"masking": jax.random.key(1)})
  tokens = math.prod(s // patch for s in shape[1:-1])
  assert pred.shape == (2, tokens, patch ** (len(shape) - 2)) and mask.shape == (2, tokens)
  assert np.isfinite(loss) and mask.sum() == 2 * (tokens - tokens // 2)
  assert variables["params"]["encoder"]["patch_embed"]["kernel"].shape == (
      *(patch,) * (len(shape) - 2), 1, 24)


def test_zero_masking_keeps_every_token_and_hides_the_removed_values():
  # PatchTST's masking: removed patches stay in the sequence with their values zeroed.
  enc = vit.Encoder(width=16, depth=1, num_heads=2, patch_size=4, mask_tokens=True,
                    mask_value="zero")
  series = jax.random.normal(jax.random.key(0), (2, 32, 1))
  noise = jax.random.uniform(jax.random.key(1), (2, 8))
  variables = enc.init(jax.random.key(2), series, mask_ratio=0.5, noise=noise)
  assert "mask_token" not in variables["params"]
  apply = jax.jit(lambda x: enc.apply(variables, x, mask_ratio=0.5, noise=noise))
  tokens, mask, ids_restore = apply(series)
  assert tokens.shape == (2, 9, 16) and ids_restore is None
  removed = int(np.argwhere(np.asarray(mask[0]))[0, 0])
  kept = int(np.argwhere(~np.asarray(mask[0], bool))[0, 0])
  np.testing.assert_array_equal(apply(series.at[0, 4 * removed].add(1.0))[0], tokens)
  zeroed = series.at[0, 4 * removed:4 * removed + 4].set(0.0)
  np.testing.assert_array_equal(apply(zeroed)[0], tokens)
  assert not np.allclose(apply(series.at[0, 4 * kept].add(1.0))[0], tokens)


@pytest.mark.parametrize("attention", ["xla", "chunked"])
def test_absent_tokens_never_reach_the_model(attention):
  # A table's missing entries: their values change nothing, whether a row has fewer missing
  # entries than the masking removes or more (then kept slots are padding).
  model = MAE(width=16, depth=2, num_heads=2, patch_size=1, decoder_width=8, decoder_depth=1,
              decoder_heads=2, mask_ratio=0.5, attention=attention)
  rows = jax.random.uniform(jax.random.key(0), (3, 10, 1))
  observed = np.ones((3, 10), bool)
  observed[0, [2, 7]] = False                 # 2 missing: fewer than the 5 removed
  observed[1, :8] = False                     # 8 missing: 2 tokens exist, 5 slots kept
  noise = jax.random.uniform(jax.random.key(1), (3, 10))
  variables = model.init(RNGS, rows, noise=noise, observed=observed)
  apply = jax.jit(lambda x, ratio: model.apply(variables, x, noise=noise, observed=observed,
                                               mask_ratio=ratio), static_argnums=1)
  for ratio in (0.5, 0.0):
    loss, pred, mask = apply(rows, ratio)
    changed = jnp.where(observed[:, :, None], rows, 123.0)
    loss2, pred2, _ = apply(changed, ratio)
    np.testing.assert_allclose(pred2, pred, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(mask)[~observed] == 1)
    if ratio == 0.0:   # imputing: every observed entry visible, only the missing ones removed
      np.testing.assert_array_equal(np.asarray(mask, bool), ~observed)
  assert not np.allclose(apply(rows.at[2, 0].add(1.0), 0.0)[1], pred)


def test_mae_with_encoder_mask_tokens_trains_its_mask_token():
  model = from_variant(MAE, "mu/4", decoder_width=32, decoder_depth=1, decoder_heads=2,
                       encoder_mask_tokens=True)
  x = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
  noise = jax.random.uniform(jax.random.key(4), (2, 16))
  variables = model.init(RNGS, x)
  (loss, (pred, mask)), grads = jax.value_and_grad(
      lambda p: (lambda o: (o[0], o[1:]))(model.apply({"params": p}, x, noise=noise)),
      has_aux=True)(variables["params"])
  assert np.isfinite(loss) and pred.shape == (2, 16, 48) and mask.sum() == 24
  assert np.abs(grads["encoder"]["mask_token"]).sum() > 0
  # The decoder adds no mask tokens of its own in this mode.
  np.testing.assert_array_equal(grads["decoder"]["mask_token"], 0)


@pytest.mark.slow
def test_encoder_mask_tokens_pretrain_then_probe(tmp_path):
  # The "w/ [M]" encoder trains in the loop; its export leaves the mask token out, so the
  # probe's encoder (which sees every patch, no mask token) loads it.
  from mae_jax import experiment  # pylint: disable=g-import-not-at-top
  from mae_jax import weights  # pylint: disable=g-import-not-at-top
  from tests.helpers import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("digits.py", "smoke")
  config.stages, config.baselines = "pretrain,linprobe", ""
  config.model.encoder_mask_tokens = True
  summary = experiment.run(config, str(tmp_path))
  assert np.isfinite(summary["pretrain"]["loss"]) and 0 <= summary["linprobe"]["top1"] <= 100
  exported, _ = weights.restore_export(str(tmp_path / "pretrain" / "export"))
  assert "mask_token" not in exported and "blocks_0" in exported
