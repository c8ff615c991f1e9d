"""Series in the loop: the forecasters, the forecast stage and every baseline on a generated
ETT file under the Informer protocol, and forecasts.csv against summary.json."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mae_jax import experiment, registry, selection
from mae_jax.tasks import series as forecast_task
from mae_jax.data import series
from mae_jax.errors import ConfigError
from mae_jax.models.forecaster import KINDS, Forecaster
from tests.helpers import load_config
from tests.test_series_data import ETTH_ROWS, write_series

RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


@pytest.mark.parametrize("kind", KINDS)
def test_forecasters_are_channel_independent_and_scale_equivariant(kind):
  # RevIN: a series shifted and scaled gets the same forecast shifted and scaled; channel
  # independence: swapping two variables swaps their forecasts (the RevIN affine starts at
  # identity, the same for every variable).
  model = Forecaster(kind, horizon=6, num_variables=3, width=16, depth=1, num_heads=2,
                     patch_size=4, hidden=8)
  x = jax.random.normal(jax.random.key(2), (2, 18, 3))   # 18 steps: the transformer reads 16
  variables = model.init(RNGS, x)
  y = model.apply(variables, x)
  assert y.shape == (2, 6, 3)
  np.testing.assert_allclose(model.apply(variables, 3.0 * x + 5.0), 3.0 * y + 5.0, rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(model.apply(variables, x[..., ::-1]), y[..., ::-1], rtol=1e-5,
                             atol=1e-5)


def test_overlapping_patches_in_the_mae_and_the_forecaster():
  from mae_jax.models import MAE  # pylint: disable=g-import-not-at-top
  mae = MAE(width=16, depth=1, num_heads=2, patch_size=4, decoder_width=8, decoder_depth=1,
            decoder_heads=2, mask_ratio=0.5, patch_stride=2)
  x = jax.random.normal(jax.random.key(4), (2, 11, 1))
  rngs = {"params": jax.random.key(0), "masking": jax.random.key(1)}
  loss, pred, mask = mae.apply(mae.init(rngs, x), x, rngs=rngs)
  assert pred.shape == (2, 4, 4) and mask.shape == (2, 4) and np.isfinite(loss)
  model = Forecaster("transformer", horizon=3, num_variables=2, width=16, depth=1, num_heads=2,
                     patch_size=4, patch_stride=2)
  x = jax.random.normal(jax.random.key(5), (2, 11, 2))
  variables = model.init(RNGS, x)
  assert model.apply(variables, x).shape == (2, 3, 2)
  assert variables["params"]["head"]["kernel"].shape == (4 * 16, 3)   # 4 patches x width


def test_frozen_encoder_gets_no_gradient():
  model = Forecaster("transformer", horizon=4, num_variables=2, width=16, depth=1, num_heads=2,
                     patch_size=4, probe=True)
  x = jax.random.normal(jax.random.key(3), (2, 16, 2))
  params = model.init(RNGS, x)["params"]
  grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x) ** 2))(params)
  assert all(np.all(g == 0) for g in jax.tree.leaves(grads["encoder"]))
  assert np.abs(grads["head"]["kernel"]).sum() > 0


@pytest.fixture(scope="module")
def etth1(tmp_path_factory):
  path = tmp_path_factory.mktemp("ett") / "ETTh1.csv"
  write_series(path, ETTH_ROWS)
  return path


@pytest.mark.slow
def test_etth1_smoke_every_stage_and_baseline_and_the_written_forecasts(etth1, tmp_path):
  config = load_config("etth1.py", "smoke")
  config.data.dataset = f"ett:{etth1}"
  summary = experiment.run(config, str(tmp_path))
  horizon = config.data.horizon
  forecast = summary["forecast"]
  # Informer's test split: 2880 rows, every window scored (no drop-last).
  assert forecast["test_windows"] == 2881 - horizon and forecast["variables"] == 7
  assert set(summary["baselines"]) == set(config.baselines.split(","))
  for name, result in summary["baselines"].items():
    assert result["test_windows"] == 2881 - horizon, name
    assert np.isfinite(result["mse"]) and result["mse"] > 0, name
  assert summary["baselines"]["patchtst"]["model"] == "transformer"
  assert (tmp_path / "baselines" / "patchtst" / "pretrain" / "export").exists()
  # forecasts.csv: one row per (window, step, variable); its metrics are summary.json's.
  with open(tmp_path / "forecast" / "predictions" / "forecasts.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == (2881 - horizon) * horizon * 7
  pred = np.array([float(r["prediction"]) for r in rows])
  truth = np.array([float(r["truth"]) for r in rows])
  np.testing.assert_allclose(np.mean((pred - truth) ** 2), forecast["mse"], rtol=1e-6)
  np.testing.assert_allclose(np.mean(np.abs(pred - truth)), forecast["mae"], rtol=1e-6)
  # The truth column is the scaled file: the first test target row is row 11520.
  source = series.load_series(config.data.dataset, lookback=config.data.lookback,
                              horizon=horizon)
  np.testing.assert_allclose(truth[:7], source.values[11520], rtol=1e-6)
  assert str(source.dates[11520]).replace("T", " ") == rows[0]["date"]
  # Persistence: the last look-back value, recomputed here.
  x, y = source.windows("test", np.arange(source.num_windows("test")))
  np.testing.assert_allclose(summary["baselines"]["persistence"]["mse"],
                             np.mean((x[:, -1:] - y) ** 2), rtol=1e-5)
  assert (tmp_path / "forecast" / "forecasts.png").exists() and (tmp_path / "forecasts.png").exists()
  np.testing.assert_allclose(
      np.load(tmp_path / "forecast" / "predictions" / "forecasts.npy").reshape(-1), pred,
      rtol=1e-6)
  assert "| persistence (last value) |" in (tmp_path / "results.md").read_text()
  assert json.loads((tmp_path / "summary.json").read_text())["forecast"] == forecast


def test_series_configs_refuse_image_stages_and_images_refuse_forecast(etth1):
  config = load_config("etth1.py", "smoke")
  config.stages = "pretrain,finetune"
  with pytest.raises(ConfigError, match="holds series, which has no stage 'finetune'"):
    experiment.validate(config)
  config = load_config("digits.py", "smoke")
  config.baselines = "lstm"
  with pytest.raises(ConfigError,
                     match=r"holds images, which has no baseline 'lstm' \(lstm is of series\)"):
    experiment.validate(config)
  config = load_config("etth1.py", "smoke")
  config.forecast.model = "tcn"
  with pytest.raises(ConfigError, match="config.forecast.model must be one of"):
    experiment.validate(config)
  config = load_config("digits.py", "smoke")
  config.model.patch_stride = 2
  with pytest.raises(ConfigError, match="config.model.patch_stride=2: overlapping patches are"):
    experiment.validate(config)
  config = load_config("etth1.py", "smoke")
  config.data.lookback = 2
  with pytest.raises(ConfigError, match="config.data.lookback=2 is shorter than the patch"):
    experiment.validate(config)


def test_persistence_is_the_last_value(etth1):
  config = load_config("etth1.py", "smoke")
  config.data.update(dataset=f"ett:{etth1}", setting="S")
  source = forecast_task.series_source(config)
  result = forecast_task.persistence(config, source)
  x, y = source.windows("test", np.arange(source.num_windows("test")))
  np.testing.assert_allclose(result["mae"], np.mean(np.abs(x[:, -1:] - y)), rtol=1e-6)


@pytest.mark.parametrize("window", [1, 2, 5, 24])
def test_moving_average_is_numpys_valid_convolution(window):
  from mae_jax import report  # pylint: disable=g-import-not-at-top
  values = np.random.default_rng(window).normal(size=100)
  np.testing.assert_allclose(report.moving_average(values, window),
                             np.convolve(values, np.ones(window) / window, mode="valid"),
                             rtol=1e-12, atol=1e-12)
  assert report.moving_average(values, 0).shape == (100,)
  assert report.moving_average(values[:3], 5).shape == (0,)


def test_study_forecast_series_plot_smooths_the_next_step_forecasts(tmp_path, monkeypatch):
  # The study's windows (24 lags -> the next OT) on a short file in ETT's layout: the plot gets
  # every test window's next step at its date, and writes a PNG, raw or smoothed.
  from mae_jax import report  # pylint: disable=g-import-not-at-top
  path = tmp_path / "ETTh1.csv"
  write_series(path, 600)
  config = load_config("etth1.py", "study")
  config.data.dataset = f"ett:{path}"
  assert config.forecast.plot_smooth == 24 and config.model.mask_ratio == 0.75
  source = forecast_task.series_source(config)
  x, y = source.windows("test", np.arange(source.num_windows("test")))
  pred = y + 0.1
  drawn = {}
  real_plot = report.forecast_series_plot

  def spy(out, dates, truth, preds, smooth, title):
    drawn.update(dates=dates, truth=truth, preds=preds, smooth=smooth)
    return real_plot(out, dates, truth, preds, smooth, title)

  monkeypatch.setattr(report, "forecast_series_plot", spy)
  for smooth in (24, 0):
    out = tmp_path / f"series{smooth}.png"
    image = forecast_task.next_step_plot(str(out), source, "test", {"gru": pred}, smooth)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.ndim == 3
  assert drawn["smooth"] == 0
  np.testing.assert_array_equal(drawn["truth"], y[:, 0, -1])
  np.testing.assert_array_equal(drawn["preds"]["gru"], pred[:, 0, -1])
  assert [source.target_dates("test", w)[0] for w in (0, len(y) - 1)] == [
      drawn["dates"][0], drawn["dates"][-1]]
  config.forecast.plot_smooth = -1
  with pytest.raises(ConfigError, match="plot_smooth"):
    experiment.validate(config)


def test_series_lr_search_scores_on_the_validation_split_not_a_slice_of_windows(etth1):
  # Overlapping windows: a random held-out slice would share rows with training, so a series
  # searches on its chronological validation split, training on every training window.
  config = load_config("etth1.py", "smoke")
  config.data.dataset = f"ett:{etth1}"
  config.forecast.lr_grid, config.forecast.lr_search_steps = (1e-4, 1e-3, 1e-2), 3
  m = registry.for_config(config)
  source = m.load_source(config)
  assert source.validation_split == "val"
  seen = []

  def train(trial, src):
    seen.append((trial, src))
    return {"mse": {1e-4: 0.9, 1e-3: 0.5, 1e-2: float("nan")}[trial.overrides["forecast.base_lr"]]}

  run = registry.Run("forecast_random_init", "forecast", {"forecast.init_from": "random"},
                     seed_name="forecast")
  best, scores = selection.choose_lr(config, run, m.stage("forecast"), source, train)
  assert best == 1e-3 and set(scores) == {1e-4, 1e-3, 1e-2}     # the lowest MSE, NaN skipped
  for trial, src in seen:
    assert src is source                                         # every training window
    assert trial.overrides["forecast.eval_split"] == "val"       # never the test split
    assert trial.overrides["forecast.num_steps"] == 3
    assert trial.overrides["forecast.init_from"] == "random" and trial.seed_key == "forecast"


@pytest.mark.slow
def test_each_series_arm_searches_its_rate_and_ltsf_keeps_its_recipe(etth1, tmp_path):
  config = load_config("etth1.py", "smoke")
  config.data.dataset = f"ett:{etth1}"
  config.stages, config.baselines = "forecast", "forecast_random_init,dlinear"
  config.forecast.init_from = "random"      # both arms from random init: their searches agree
  config.forecast.update(lr_grid=(1e-4, 1e-3), lr_search_steps=2, num_epochs=0, num_steps=2)
  summary = experiment.run(config, str(tmp_path))
  ours, twin = summary["forecast"], summary["baselines"]["forecast_random_init"]
  assert set(ours["lr_search"]) == {"0.0001", "0.001"} and ours["base_lr"] in (1e-4, 1e-3)
  assert ours["lr_search"] == twin["lr_search"] and ours["mse"] == twin["mse"]
  trial = json.loads((tmp_path / "forecast" / "lr_search" / "base_lr=0.001" /
                      "result.json").read_text())
  assert "val_windows" in trial and "test_windows" not in trial and trial["steps"] == 2
  # DLinear runs the LTSF-Linear paper's rate (config.ltsf.lr_grid empty): no search.
  assert "lr_search" not in summary["baselines"]["dlinear"]
  assert not (tmp_path / "baselines" / "dlinear" / "lr_search").exists()
