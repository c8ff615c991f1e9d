"""ETTh1 forecasting (oil temperature and six loads of an electricity transformer, hourly):
MAE pretraining on the look-back windows, then the forecast stage, with every baseline.

  mae-jax --config=configs/etth1.py --config.data.dataset=ett:/path/to/ETTh1.csv \
      --workdir=/tmp/mae_etth1

The standard protocol (Informer's borders: 12/4/4 months, z-scored with the training rows,
setting M, every test window scored; MSE and MAE on the z-scored series) with PatchTST's
self-supervised recipe: look-back 512, patches of 12, d_model 128, 3 layers, 16 heads, 40% of
the patches masked, RevIN, channel independence, flatten head. The anchor: HF's
ibm/patchtst-etth1-pretrain, test MSE 0.3881 at horizon 96 from a 512-hour context
(docs/reproducing.md).
Fields: config.data.horizon (96/192/336/720), config.data.lookback, config.data.setting (M/S).
ETTh2/ETTm1/ETTm2 work the same (the 15-minute files get 4x the rows per month).

`:study` is the TinyImageNet study's protocol: OT alone, min-max scaled, a chronological
70/20/10 split, 24 lagged values -> the next one, the RNN / LSTM / GRU beside; its masking
ratios 0.75 / 0.5 / 0.25 (this run: 0.75) and no masking are the series_masking sweep, which
runs the recurrent forecasters too (docs/reproducing.md):

  mae-jax-sweep --config=etth1:study --sweep=series_masking --seeds=0,1,2 \
      --config.data.dataset=ett:/path/to/ETTh1.csv --workdir=/tmp/etth1_study_sweep

Its forecast_series.png smooths the next-step forecasts as the study's plot
(config.forecast.plot_smooth). `:smoke` runs every stage and baseline for a few steps
(`:study,smoke`: on the study's windows).
"""

from mae_jax import config_lib


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, study=False)
  c = config_lib.base_config("series")
  c.baselines = config_lib.STUDY_SERIES_BASELINES
  c.data.dataset = "ett:ETTh1.csv"
  c.data.update(lookback=512, horizon=96, setting="M", target="OT", protocol="informer",
                scaling="zscore", eval_batch_size=256)
  # PatchTST_self_supervised: pretrain 10 epochs at lr 1e-4 (batch 64), fine-tune 20 epochs.
  config_lib.patchtst_recipe(c, 10, 20, checkpoint_every_steps=1000)
  if arg.study:
    # The study's masking sweep (configs/sweeps/series_masking.py) runs all three ratios.
    config_lib.series_study_protocol(c, smooth=24)
  if arg.smoke:
    config_lib.series_smoke(c, arg.study)
  return c
