"""Offline forecasting quickstart on real data: hourly temperatures of Seattle and San Francisco
in 2010 (shipped inside the vega_datasets package; `pip install '.[series]'`).

  mae-jax --config=configs/temps.py --workdir=/tmp/mae_temps

A day ahead (24 h) from four days (96 h), both cities (setting M), z-scored with the training
rows, a chronological 70/10/20 split: MAE pretraining on 1-D patches of 8 hours, the forecast
stage from it, and every baseline (persistence, linear, RNN, LSTM, GRU, the transformer from
random init, PatchTST-style masking). summary.json: MSE and MAE on the test windows;
forecast/predictions/forecasts.csv: every forecast; forecast/forecasts.png. `:smoke` shrinks it.
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False)
  c = config_lib.base_config("series")
  c.stages = "pretrain,forecast"
  c.baselines = "persistence,linear,rnn,lstm,gru,forecast_random_init,patchtst"
  c.model.variant = "mini/8"
  c.model.mask_ratio = 0.5
  c.model.norm_pix_loss = False
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 64, 1, 4
  c.data.dataset = "vega_temps"
  c.data.update(lookback=96, horizon=24, setting="M", protocol="fractions", split=(0.7, 0.1, 0.2),
                scaling="zscore", eval_batch_size=256)
  for stage in config_lib.stage_sections(c):
    c[stage].checkpoint_every_steps = 500
    c[stage].log_every_steps = 50
  c.pretrain.update(batch_size=64, num_epochs=8, base_lr=1e-3, warmup_epochs=1,
                    weight_decay=0.0, b2=0.999)
  c.forecast.update(batch_size=64, num_epochs=8, base_lr=1e-3, warmup_epochs=1,
                    head_dropout=0.1, eval_every_epochs=4)
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=4)
    c.data.update(lookback=16, horizon=4)
    c.forecast.hidden = 8
  return c
