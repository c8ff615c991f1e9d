"""LTSF-Linear's DLinear and NLinear (models/linear_forecasters.py) and the seasonal naive
forecast (tasks/series.py): the decomposition against NumPy, NLinear's last-value
normalisation, the exact repeat of a periodic series, and their baselines' runs and checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax import experiment, registry
from mae_jax.errors import ConfigError
from mae_jax.models.forecaster import Forecaster
from mae_jax.models.linear_forecasters import DLinear, NLinear, decompose, moving_average
from mae_jax.tasks import series as series_task
from tests.helpers import load_config

KEY = jax.random.key(0)


def numpy_moving_average(x: np.ndarray, kernel: int) -> np.ndarray:
  """(..., L): a valid moving average over the series padded by repeating its end values."""
  half = (kernel - 1) // 2
  rows = x.reshape(-1, x.shape[-1])
  out = [np.convolve(np.pad(r, half, mode="edge"), np.ones(kernel) / kernel, mode="valid")
         for r in rows]
  return np.stack(out).reshape(x.shape)


@pytest.mark.parametrize("kernel, length", [(25, 336), (25, 16), (5, 40), (1, 7)])
def test_decomposition_is_numpys_moving_average_with_replicate_padding(kernel, length):
  # A look-back shorter than the kernel (16 < 25) pads more than it keeps, as AvgPool1d does.
  x = np.random.default_rng(kernel + length).normal(size=(3, 2, length))
  trend = np.asarray(moving_average(jnp.asarray(x), kernel))
  np.testing.assert_allclose(trend, numpy_moving_average(x, kernel), rtol=1e-5, atol=1e-5)
  remainder, trend2 = decompose(jnp.asarray(x), kernel)
  np.testing.assert_allclose(np.asarray(remainder + trend2), x, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="odd"):
    moving_average(jnp.asarray(x), 4)


def numpy_dlinear(x: np.ndarray, params: dict, kernel: int) -> np.ndarray:
  """DLinear by its definition, in NumPy: (N, M, L) -> (N, M, H) with shared weights."""
  trend = numpy_moving_average(x, kernel)
  dense = lambda p, v: v @ np.asarray(p["shared"]["kernel"]) + np.asarray(p["shared"]["bias"])
  return dense(params["trend"], trend) + dense(params["remainder"], x - trend)


def test_dlinear_is_numpys_linear_on_trend_plus_linear_on_remainder():
  model = DLinear(horizon=6, kernel=5)
  x = np.random.default_rng(1).normal(size=(4, 3, 20)).astype(np.float32)
  params = model.init(KEY, x)["params"]
  y = np.asarray(model.apply({"params": params}, x))
  np.testing.assert_allclose(y, numpy_dlinear(x.astype(np.float64), params, 5), rtol=1e-4,
                             atol=1e-4)
  # individual=False: every variable through the same weights (swapping variables swaps
  # forecasts).
  np.testing.assert_allclose(model.apply({"params": params}, x[:, ::-1]), y[:, ::-1], rtol=1e-5,
                             atol=1e-5)


def test_individual_gives_each_variable_its_own_map():
  model = DLinear(horizon=6, kernel=5, individual=True)
  x = np.random.default_rng(2).normal(size=(4, 3, 20)).astype(np.float32)
  params = model.init(KEY, x)["params"]
  assert params["trend"]["kernel"].shape == (3, 20, 6)
  trend = numpy_moving_average(x.astype(np.float64), 5)
  expected = sum(np.einsum("nml,mlh->nmh", v, np.asarray(params[k]["kernel"]))
                 + np.asarray(params[k]["bias"]) for k, v in (("trend", trend),
                                                              ("remainder", x - trend)))
  np.testing.assert_allclose(model.apply({"params": params}, x), expected, rtol=1e-4, atol=1e-4)


def test_nlinear_subtracts_the_last_value_and_adds_it_back():
  model = NLinear(horizon=5)
  x = np.random.default_rng(3).normal(size=(4, 2, 12)).astype(np.float32)
  params = model.init(KEY, x)["params"]
  w = {k: np.asarray(v) for k, v in params["linear"]["shared"].items()}
  last = x[..., -1:]
  np.testing.assert_allclose(model.apply({"params": params}, x),
                             (x - last) @ w["kernel"] + w["bias"] + last, rtol=1e-5, atol=1e-5)
  # A level shift of the whole window passes straight through.
  np.testing.assert_allclose(model.apply({"params": params}, x + 7.0),
                             model.apply({"params": params}, x) + 7.0, rtol=1e-5, atol=1e-4)


def test_forecaster_runs_them_on_time_major_windows_without_revin():
  x = np.random.default_rng(4).normal(size=(2, 30, 3)).astype(np.float32)   # (N, L, M)
  for kind in ("dlinear", "nlinear"):
    model = Forecaster(kind, horizon=4, num_variables=3, moving_avg=5, revin=False)
    params = model.init(KEY, x)["params"]
    assert "revin_weight" not in params
    y = np.asarray(model.apply({"params": params}, x))
    assert y.shape == (2, 4, 3)
    if kind == "dlinear":                       # (N, H, M) = DLinear on (N, M, L), transposed
      expected = numpy_dlinear(x.transpose(0, 2, 1).astype(np.float64), params["dlinear"], 5)
      np.testing.assert_allclose(y, expected.transpose(0, 2, 1), rtol=1e-4, atol=1e-4)


def test_seasonal_naive_repeats_a_periodic_series_exactly():
  period, lookback, horizon = 48, 96, 200       # a horizon of several seasons
  t = np.arange(lookback + horizon)
  series = np.stack([np.sin(2 * np.pi * t / period), np.cos(6 * np.pi * t / period) + 3], -1)
  series = np.round(series, 6)[None]            # (1, T, 2), exactly periodic
  forecast = series_task.naive_forecast(series[:, :lookback], horizon, period)
  np.testing.assert_array_equal(forecast, series[:, lookback:])
  persistence = series_task.naive_forecast(series[:, :lookback], horizon)
  np.testing.assert_array_equal(persistence, np.repeat(series[:, lookback - 1:lookback], horizon,
                                                       axis=1))
  with pytest.raises(ValueError, match="look-back"):
    series_task.naive_forecast(series[:, :10], horizon, period)


def test_ltsf_baselines_take_their_own_recipe_paired_with_the_forecast_stage():
  config = load_config("elecdemand.py")
  run, = registry.get("series").baseline("dlinear").training_runs(config)
  assert run.stage == "forecast" and run.seed_key == "forecast"
  assert run.overrides["forecast.model"] == "dlinear"
  assert run.overrides["forecast.revin"] is False
  assert run.overrides["forecast.batch_size"] == config.ltsf.batch_size
  lr = config.ltsf.base_lr * config.ltsf.batch_size / 256
  assert lr == pytest.approx(0.005)             # LTSF-Linear's ETTh1 learning rate


def test_season_and_kernel_are_checked():
  config = load_config("elecdemand.py", "smoke")
  config.data.season = config.data.lookback + 1
  with pytest.raises(ConfigError, match="config.data.season"):
    experiment.validate(config)
  config = load_config("elecdemand.py", "smoke")
  config.forecast.moving_avg = 24
  with pytest.raises(ConfigError, match="config.forecast.moving_avg=24"):
    experiment.validate(config)


@pytest.mark.parametrize("name", ["elecdemand.py", "weather.py"])
def test_series_configs_variants(name):
  full, cpu = load_config(name), load_config(name, "cpu,horizon=720")
  assert (full.pretrain.num_epochs, full.forecast.num_epochs) == (10, 20)
  assert (cpu.pretrain.num_epochs, cpu.forecast.num_epochs, cpu.data.horizon) == (2, 1, 720)
  assert cpu.data.lookback == 336 and tuple(cpu.data.split) == (0.7, 0.1, 0.2)
  assert {"dlinear", "nlinear", "seasonal_naive", "patchtst"} <= set(
      registry.names(full.baselines))
  study = load_config(name, "study")
  assert (study.data.protocol, study.data.lookback, study.data.horizon) == ("study", 24, 1)
  assert {"rnn", "lstm", "gru"} <= set(registry.names(study.baselines))
  experiment.validate(load_config(name, "study,smoke"))


def test_weather_station_variant():
  config = load_config("weather.py", "station=LGA")
  assert registry.names(config.data.columns)[0] == "LGA_temp"
  assert config.data.target == "LGA_temp" and len(registry.names(config.data.columns)) == 8
  with pytest.raises(ConfigError, match="station=XYZ"):
    load_config("weather.py", "station=XYZ")
