"""The MAE design-choice study (MAE paper Table 1 and Figure 5; the Oxford Pets study): each
axis changes one choice of the config and keeps the rest.

  mae-jax-sweep --config=pets --sweep=ablations --workdir=DIR --seeds=0,1,2
  mae-jax-sweep --config=digits --sweep=ablations --axes=mask_sampling,mask_ratio --workdir=DIR

Decoder widths are a quarter, a half and all of the config's own (ViT-B's 512: 128 / 256 /
512); every other axis uses the paper's values. The baselines (random init, raw pixels) do not
depend on these choices: the points run without them.
"""

from mae_jax import sweep_lib


def get_sweep(config):
  width = config.model.decoder_width
  return sweep_lib.Sweep(axes=[
      # Figure 6 / Table 1f: random > block > grid by linear probe at 75%.
      sweep_lib.axis("mask_sampling", "model.mask_sampling", ["random", "block", "grid"]),
      # Figure 5: 75% is best for both protocols; the probe falls off faster away from it.
      sweep_lib.axis("mask_ratio", "model.mask_ratio", [0.25, 0.5, 0.75, 0.9]),
      # Table 1a, 1b: a deep decoder helps the probe; the fine-tune hardly cares.
      sweep_lib.axis("decoder_depth", "model.decoder_depth", [1, 2, 4, 8]),
      sweep_lib.axis("decoder_width", "model.decoder_width", [width // 4, width // 2, width]),
      # Table 1c: mask tokens in the encoder cost 3.3x the compute and lose 14 probe points.
      sweep_lib.axis("encoder_mask_tokens", "model.encoder_mask_tokens", [False, True]),
      # Table 1d: normalised pixels as targets help.
      sweep_lib.axis("norm_pix_loss", "model.norm_pix_loss", [False, True]),
      # Table 1e: crop helps a little, colour jitter hurts; MAE works without augmentation.
      sweep_lib.labelled("augmentation", {
          "none": {"pretrain.crop_scale": (1.0, 1.0), "pretrain.crop_ratio": (1.0, 1.0),
                   "pretrain.hflip": False},
          "crop": {},      # the config's own random-resized crop
          "crop+jitter": {"pretrain.color_jitter": 0.4},
      }),
  ], common={"baselines": ""})
