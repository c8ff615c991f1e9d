"""Masked pretraining for forecasting (the TinyImageNet study's time-series axis): the mask
ratio, and which masking, against no pretraining at all.

  mae-jax-sweep --config=etth1:study --sweep=series_masking --seeds=0,1,2 --workdir=DIR
  mae-jax-sweep --config=temps --sweep=series_masking --workdir=DIR

`pretraining`: none (the forecast transformer from random init), the MAE (removed patches
dropped from the encoder) and PatchTST's masking (removed patches zeroed, kept in the
sequence), each at the config's mask ratio. `mask_ratio`: the study's 0.75 / 0.5 / 0.25 with the
MAE. Every point is scored by the forecast stage's test MSE and MAE; the baselines run once, in
the config's own run.
"""

from mae_jax import sweep_lib


def get_sweep(config):
  del config
  return sweep_lib.Sweep(axes=[
      sweep_lib.labelled("pretraining", {
          "none": {"stages": "forecast", "forecast.init_from": "random"},
          "mae": {},
          "patchtst": {"model.encoder_mask_tokens": True, "model.mask_value": "zero"},
      }),
      sweep_lib.axis("mask_ratio", "model.mask_ratio", [0.25, 0.5, 0.75]),
  ], common={"baselines": ""})
