"""Masked pretraining for forecasting (the TinyImageNet study's time-series axis): which masking
and at what ratio, against no pretraining at all and against the study's recurrent forecasters.

  mae-jax-sweep --config=etth1:study --sweep=series_masking --seeds=0,1,2 \
      --config.data.dataset=ett:/path/to/ETTh1.csv --workdir=DIR
  mae-jax-sweep --config=temps --sweep=series_masking --workdir=DIR

`pretraining`: none (the forecast transformer from random init: the study's "without
masking"), the MAE (removed patches dropped from the encoder) and PatchTST's masking (removed
patches zeroed, kept in the sequence), each at the config's mask ratio. `mask_ratio`: the
study's 0.25 / 0.5 / 0.75, a line each for the MAE and PatchTST's masking. `recurrent`: the
study's RNN, LSTM and GRU (config.forecast.model, trained on the same windows, no pretraining).
Every point is scored by the forecast stage's test MSE and MAE; the config's other baselines
run once, in the config's own run. sweep.md ends with the figures published for the dataset
(the study's Table 2 for ETTh1).
"""

from mae_jax import sweep_lib

RATIOS = (0.25, 0.5, 0.75)
MASKING = {"mae": {},
           "patchtst": {"model.encoder_mask_tokens": True, "model.mask_value": "zero"}}
RECURRENT = ("rnn", "lstm", "gru")


def get_sweep(config):
  del config
  # The masking's fields first: a point at the config's own ratio is then the same run (and
  # folder) as that masking's point on the pretraining axis.
  by_ratio = sweep_lib.Axis("mask_ratio", tuple(
      sweep_lib.Point(f"{kind} {ratio}", (*fields.items(), ("model.mask_ratio", ratio)),
                      x=ratio, series=kind)
      for kind, fields in MASKING.items() for ratio in RATIOS))
  return sweep_lib.Sweep(axes=[
      sweep_lib.labelled("pretraining", {
          "none": {"stages": "forecast", "forecast.init_from": "random"}, **MASKING}),
      by_ratio,
      sweep_lib.labelled("recurrent", {
          kind: {"stages": "forecast", "forecast.model": kind} for kind in RECURRENT}),
  ], common={"baselines": ""})
