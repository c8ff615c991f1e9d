"""Time series in the one loop: MAE pretraining on look-back windows, the forecast stage and its
baselines (models/forecaster.py), scored by MSE and MAE on the scaled series; the `series`
modality.

Serves config.data.dataset "ett:/path/ETTh1.csv" (ETT's columns), "csv:/path" (any columns; a
csv: file is a table when the stages impute) and the offline "vega_temps", "elecdemand" and
"nyc_weather" (data/series.py).

Baselines: persistence and seasonal_naive (the last value, or the last season of
config.data.season steps, repeated; no training); linear, dlinear, nlinear, rnn, lstm, gru (other
forecasters from random init; dlinear and nlinear on LTSF-Linear's recipe, config.ltsf);
forecast_random_init (the forecast transformer from random init: PatchTST's supervised model,
up to LayerNorm for BatchNorm and fixed sin-cos positions) and patchtst (PatchTST's masking).

Pretraining sees each variable of a look-back window as its own series (channel independence),
instance-normalised (RevIN without its affine), cut into patches of the variant's patch size:
the same MAE (masking, decoder, masked loss) as images, on a 1-D grid. The forecast stage puts
the pretrained encoder under PatchTST's flatten head (models/forecaster.py).

Every window of the evaluated split is scored (no drop-last); MSE and MAE are means over all
(window, step, variable) entries. At the end the stage writes predictions/forecasts.csv (one
row per window, step and variable), forecasts.png (a few windows: look-back, truth, ours) and
forecast_series.png (every window's next step along the split, moving averages of
config.forecast.plot_smooth steps over the raw series drawn faint, as the study's plot).
"""

import csv
import dataclasses
import os
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from mae_jax import config_lib, registry, selection
from mae_jax.data import series as series_lib
from mae_jax.errors import ConfigError
from mae_jax.masking import example_noise, patch_grid, patchify
from mae_jax.models import MAE, decode_variant
from mae_jax.models.forecaster import KINDS, Forecaster, channels_to_batch, instance_norm
from mae_jax.tasks.base import (Batch, Evaluation, Task, TrainData, adamw_tx, encoder_init,
                                export_encoder, mae_tx, ordered_rows, pretrain_model,
                                shuffled_rows)

PREDICTIONS, FORECASTS_CSV, FORECASTS_PNG = "predictions", "forecasts.csv", "forecasts.png"
# Every window's next step along the split, smoothed as the TinyImageNet study plots it.
FORECAST_SERIES_PNG = "forecast_series.png"
FORECASTS_NPY = "forecasts.npy"   # the same forecasts as an array (windows, H, M), for plots
CSV_COLUMNS = ("window", "step", "date", "variable", "prediction", "truth")


def series_source(config: ml_collections.ConfigDict) -> series_lib.Series:
  """config.data's series, scaled and split (data/series.py)."""
  d = config.data
  return series_lib.load_series(
      d.dataset, lookback=d.lookback, horizon=d.horizon, setting=d.setting, target=d.target,
      protocol=d.protocol, split=tuple(d.split), scaling=d.scaling, date_column=d.date_column,
      columns=tuple(registry.names(d.columns)))


def train_data(source: series_lib.Series, batch_size: int) -> TrainData:
  """The training windows, reshuffled every epoch (from the seed), whole batches only."""

  def take(rows: np.ndarray) -> Batch:
    x, y = source.windows("train", rows)
    return {"series": x, "target": y}

  return shuffled_rows(source.num_windows("train"), batch_size, take)


def eval_batches(source: series_lib.Series, split: str, batch_size: int, num_shards: int,
                 shard_index: int) -> Iterator[Batch]:
  """Every window of `split` in order, in global batches of `batch_size` (the last padded,
  "mask" 0 on padding); this shard's rows of each, with their window numbers ("index")."""
  n = source.num_windows(split)
  for index, valid in ordered_rows(n, batch_size, num_shards, shard_index):
    x, y = source.windows(split, np.where(valid, index, n - 1))
    yield {"series": x, "target": y, "mask": valid.astype(np.float32),
           "index": index.astype(np.int32)}


def _normalised_series(x: jax.Array, model: MAE) -> jax.Array:
  """(N, L, M) windows -> (N * M, L', 1) series, each instance-normalised (RevIN's statistics)
  over its look-back; L' = the steps the forecaster's patches cover."""
  series = channels_to_batch(instance_norm(x)[0])
  return series if model.patch_stride else series[:, x.shape[1] % model.patch_size:]


def pretrain_task(config: ml_collections.ConfigDict, source: series_lib.Series | None = None
                  ) -> Task:
  """The MAE on look-back windows: every variable a series of lookback / p patches."""
  model = pretrain_model(config)
  num_vars = len(source.variables) if source is not None else 1
  # Without a stride, the last whole patches of the look-back (as the forecaster cuts them).
  steps = config.data.lookback
  steps = steps if model.patch_stride else steps // model.patch_size * model.patch_size
  patches, = patch_grid((steps,), model.patch_size, model.patch_stride)

  def loss_fn(params, model_state, batch, rng, example_ids):
    # One key per (window, variable): masks independent of the devices and micro-batches.
    noise = example_noise(rng, example_ids, (num_vars, patches))
    series = _normalised_series(batch["series"], model)
    loss, _, _ = model.apply({"params": params}, series, noise=noise.reshape(-1, patches),
                             train=True)
    return loss, (model_state, {"loss": loss})

  s = config.pretrain
  task = Task("pretrain", model, loss_fn, mae_tx(s), input_shape=(steps, 1))
  if source is None:
    return task
  return dataclasses.replace(
      task, data=train_data(source, s.batch_size),
      evaluation=_reconstruction_eval(config, model, source, num_vars, patches),
      finish=lambda variables, stage_dir: export_encoder(config, variables, stage_dir))


def _reconstruction_eval(config: ml_collections.ConfigDict, model: MAE,
                         source: series_lib.Series, num_vars: int, patches: int) -> Evaluation:
  """The masked-patch loss on the validation windows, with fixed masks (noise from key 0)."""

  def sums(params, model_state, batch):
    index = batch["index"]
    noise = example_noise(jax.random.key(0), index, (num_vars, patches))
    x = _normalised_series(batch["series"], model)
    _, pred, mask = model.apply({"params": params}, x, noise=noise.reshape(-1, patches),
                                train=False)
    per_patch = jnp.mean((pred - patchify(x, model.patch_size, model.patch_stride)) ** 2,
                         axis=-1)
    w = jnp.repeat(batch["mask"], num_vars)[:, None] * mask
    return {"count": w.sum(), "loss_sum": (per_patch * w).sum()}

  def metrics(total: dict[str, float]) -> dict[str, float]:
    return {"loss": total["loss_sum"] / max(total["count"], 1.0)}

  batches = lambda shards, index: eval_batches(  # noqa: E731
      source, "val", config.data.eval_batch_size, shards, index)
  return Evaluation(sums, batches, metrics, lambda m: {"eval_loss": m["loss"]})


def forecast_model(config: ml_collections.ConfigDict, num_variables: int) -> Forecaster:
  s, v = config.forecast, decode_variant(config.model.variant)
  return Forecaster(s.model, config.data.horizon, num_variables, width=v.width, depth=v.depth,
                    num_heads=v.num_heads, patch_size=v.patch_size,
                    patch_stride=config.model.patch_stride, mlp_ratio=v.mlp_ratio,
                    drop_path=s.drop_path, head_dropout=s.head_dropout, probe=s.probe,
                    hidden=s.hidden, moving_avg=s.moving_avg, individual=s.individual,
                    revin=s.revin, dtype=jnp.dtype(config.model.dtype),
                    attention=config.model.attention)


def forecast_task(config: ml_collections.ConfigDict, workdir: str,
                  source: series_lib.Series | None = None, num_variables: int = 1) -> Task:
  """The forecast stage: config.forecast.model on look-back windows, MSE loss; the transformer
  starts from config.forecast.init_from ("" = this run's pretrain export)."""
  s = config.forecast
  num_variables = len(source.variables) if source is not None else num_variables
  model = forecast_model(config, num_variables)

  def loss_fn(params, model_state, batch, rng, example_ids):
    rngs = {"dropout": jax.random.fold_in(rng, example_ids[0])}
    pred = model.apply({"params": params}, batch["series"], train=True, rngs=rngs)
    loss = jnp.mean((pred - batch["target"]) ** 2)
    return loss, (model_state, {"loss": loss})

  make_tx = adamw_tx(s, grad_clip_norm=s.grad_clip_norm,
                     trainable=(lambda names: names[0] != "encoder") if s.probe else None)
  init_from = encoder_init(s.init_from, workdir) if s.model == "transformer" else "random"
  task = Task("forecast", model, loss_fn, make_tx,
              input_shape=(config.data.lookback, num_variables), init_from=init_from)
  if source is None:
    return task
  split = s.eval_split

  def sums(params, model_state, batch):
    pred = model.apply({"params": params}, batch["series"], train=False)
    w = batch["mask"][:, None, None]
    err = pred - batch["target"]
    entries = w * jnp.ones_like(err)
    return {"entries": entries.sum(), "windows": batch["mask"].sum(),
            "se": (err ** 2 * w).sum(), "ae": (jnp.abs(err) * w).sum()}

  def metrics(total: dict[str, float]) -> dict[str, Any]:
    n = max(total["entries"], 1.0)
    return {"mse": total["se"] / n, "mae": total["ae"] / n, "windows": total["windows"]}

  def result(m: dict[str, Any]) -> dict[str, Any]:
    return {"mse": m["mse"], "mae": m["mae"], f"{split}_windows": int(m["windows"]),
            "horizon": config.data.horizon, "lookback": config.data.lookback,
            "variables": len(source.variables), "model": s.model}

  batches = lambda shards, index: eval_batches(  # noqa: E731
      source, split, config.data.eval_batch_size, shards, index)
  return dataclasses.replace(
      task, data=train_data(source, s.batch_size),
      evaluation=Evaluation(sums, batches, metrics, result),
      finish=lambda variables, stage_dir: write_forecasts(config, model, variables, source,
                                                          stage_dir))


def predictions(model: Forecaster, variables: dict[str, Any], source: series_lib.Series,
                split: str, batch_size: int) -> np.ndarray:
  """Every window of `split` forecast: (windows, H, M) float32 on the scaled series."""
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  out = []
  for b in eval_batches(source, split, batch_size, 1, 0):
    out.append(np.asarray(apply(variables, b["series"]))[b["mask"] > 0])
  return np.concatenate(out)


def write_forecasts(config: ml_collections.ConfigDict, model: Forecaster,
                    variables: dict[str, Any], source: series_lib.Series, stage_dir: str
                    ) -> dict[str, np.ndarray]:
  """stage_dir/predictions/forecasts.csv and forecasts.png (first process only); the plot
  also goes to TensorBoard."""
  if jax.process_index() != 0:
    return {}
  split = config.forecast.eval_split
  pred = predictions(model, variables, source, split, config.data.eval_batch_size)
  truth = source.windows(split, np.arange(len(pred)))[1]
  path = epath.Path(stage_dir, PREDICTIONS, FORECASTS_CSV)
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("w") as f:
    write_csv(f, source, split, pred, truth)
  with epath.Path(stage_dir, PREDICTIONS, FORECASTS_NPY).open("wb") as f:
    np.save(f, pred)
  from mae_jax import report  # pylint: disable=g-import-not-at-top  (matplotlib)
  preds = {config.forecast.model: pred}
  image = report.forecast_plot(os.path.join(stage_dir, FORECASTS_PNG), source, split, preds,
                               config.forecast.plot_windows)
  along = next_step_plot(os.path.join(stage_dir, FORECAST_SERIES_PNG), source, split, preds,
                         config.forecast.plot_smooth)
  return {"forecasts": image, "forecast_series": along}


def next_step_plot(path: str, source: series_lib.Series, split: str,
                   preds: dict[str, np.ndarray], smooth: int) -> np.ndarray:
  """`path`: the first forecast step of every window of `split` ({label: (windows, H, M)}),
  last variable, against its date: at horizon 1 (the study's) the whole forecast, smoothed by
  a moving average of `smooth` steps (0: raw). -> the image."""
  from mae_jax import report  # pylint: disable=g-import-not-at-top  (matplotlib)
  count = len(next(iter(preds.values())))
  start = source.borders[split][0] + source.lookback    # window 0's first target row
  rows = slice(start, start + count)
  title = f"{source.name} {split}: next-step forecasts of {source.variables[-1]}"
  if smooth > 1:
    title += f", moving averages of {smooth} steps over the raw series (faint)"
  return report.forecast_series_plot(path, source.dates[rows], source.values[rows, -1],
                                     {k: v[:, 0, -1] for k, v in preds.items()}, smooth, title)


def compare_plot(config: ml_collections.ConfigDict, workdir: str, summary: dict[str, Any],
                 source: series_lib.Series) -> str | None:
  """WORKDIR/forecasts.png: a few windows with the forecast stage's forecast and the best
  baseline's (lowest MSE) beside the truth; WORKDIR/forecast_series.png: both along the split
  (`next_step_plot`). -> the first file, or None without a forecast stage."""
  stage = os.path.join(workdir, "forecast", PREDICTIONS, FORECASTS_NPY)
  if "forecast" not in summary or not epath.Path(stage).exists():
    return None
  split = config.forecast.eval_split
  preds = {"ours (forecast)": np.load(epath.Path(stage).open("rb"))}
  scored = sorted((r["mse"], b) for b, r in summary.get("baselines", {}).items() if "mse" in r)
  for _, best in scored[:1]:
    if best in NAIVE_PERIODS:
      x, _ = source.windows(split, np.arange(source.num_windows(split)))
      preds[best] = naive_forecast(x, source.horizon, NAIVE_PERIODS[best](config))
    else:
      path = epath.Path(workdir, "baselines", best, PREDICTIONS, FORECASTS_NPY)
      if path.exists():
        preds[best] = np.load(path.open("rb"))
  from mae_jax import report  # pylint: disable=g-import-not-at-top  (matplotlib)
  out = os.path.join(workdir, FORECASTS_PNG)
  report.forecast_plot(out, source, split, preds, config.forecast.plot_windows)
  next_step_plot(os.path.join(workdir, FORECAST_SERIES_PNG), source, split, preds,
                 config.forecast.plot_smooth)
  return out


def write_csv(f: Any, source: series_lib.Series, split: str, pred: np.ndarray,
              truth: np.ndarray) -> None:
  """One row per (window, step, variable): window from 0 in the split's order, step 1..H, the
  predicted step's date, prediction and truth on the scaled series (the metrics' scale)."""
  writer = csv.writer(f)
  writer.writerow(CSV_COLUMNS)
  for w in range(len(pred)):
    dates = source.target_dates(split, w)
    for h in range(pred.shape[1]):
      date = str(dates[h]).replace("T", " ")
      for m, name in enumerate(source.variables):
        writer.writerow((w, h + 1, date, name, f"{pred[w, h, m]:.9g}", f"{truth[w, h, m]:.9g}"))


def naive_forecast(x: np.ndarray, horizon: int, period: int = 1) -> np.ndarray:
  """x: (N, L, M) look-back -> (N, horizon, M): the last `period` steps repeated (the seasonal
  naive forecast; period 1 is persistence). Step h is x[:, L - period + h % period]."""
  if not 1 <= period <= x.shape[1]:
    raise ValueError(f"a season of {period} steps needs 1 <= period <= the look-back "
                     f"{x.shape[1]}")
  return x[:, x.shape[1] - period + np.arange(horizon) % period]


def naive_scores(config: ml_collections.ConfigDict, source: series_lib.Series, period: int
                 ) -> dict[str, Any]:
  """MSE and MAE of `naive_forecast` over every window of config.forecast.eval_split."""
  split = config.forecast.eval_split
  n = source.num_windows(split)
  se = ae = 0.0
  for start in range(0, n, 4096):
    x, y = source.windows(split, np.arange(start, min(start + 4096, n)))
    err = naive_forecast(x, source.horizon, period).astype(np.float64) - y
    se, ae = se + (err ** 2).sum(), ae + np.abs(err).sum()
  entries = n * source.horizon * len(source.variables)
  return {"mse": float(se / entries), "mae": float(ae / entries), f"{split}_windows": n}


def persistence(config: ml_collections.ConfigDict, source: series_lib.Series
                ) -> dict[str, Any]:
  """The last look-back value, repeated over the horizon: what any forecaster must beat."""
  return naive_scores(config, source, 1)


# The baselines that forecast without training -> config -> their season in steps.
NAIVE_PERIODS = {"persistence": lambda config: 1,
                 "seasonal_naive": lambda config: config.data.season}


# ---- the modality -------------------------------------------------------------------------------

PREFIXES = ("ett:", "csv:")
# Forecasters of other kinds (config.forecast.model), each a baseline from random init.
FORECASTER_BASELINES = {"linear": "linear on the look-back", "rnn": "RNN", "lstm": "LSTM",
                        "gru": "GRU"}
# LTSF-Linear's models, trained on their own recipe (config.ltsf).
LTSF_BASELINES = {"dlinear": "DLinear (LTSF-Linear)", "nlinear": "NLinear (LTSF-Linear)"}


def data_fields() -> dict[str, Any]:
  """config.data's fields for series: windows of `lookback` rows in, the next `horizon` rows
  out. setting "M": every variable (or `columns`, comma-separated) in and out; "S": `target`
  only. protocol "informer" (ETT's fixed 12/4/4-month borders), "fractions" (`split`: train,
  val, test shares), "study"."""
  return dict(lookback=336, horizon=96, setting="M", target="OT", protocol="informer",
              split=(0.7, 0.1, 0.2),
              scaling="zscore",       # training rows' mean and std; or "minmax" (to [0, 1])
              date_column="date", columns="",
              season=24)              # seasonal_naive's period in steps: a day of hours


def pretrain_section() -> ml_collections.ConfigDict:
  return config_lib.loop_section(batch_size=4096, num_epochs=800, base_lr=1.5e-4,
                                 warmup_epochs=40, b1=0.9, b2=0.95)


def forecast_section() -> ml_collections.ConfigDict:
  """PatchTST's fine-tuning recipe (Adam, lr 1e-4 at batch 128 -> base_lr 2e-4, MSE loss, RevIN,
  flatten head); every window of eval_split scored."""
  return config_lib.loop_section(
      batch_size=128, num_epochs=20, base_lr=2e-4, warmup_epochs=1, weight_decay=0.0, b1=0.9,
      b2=0.999, grad_clip_norm=0.0,
      model="transformer",   # or linear, dlinear, nlinear, rnn, lstm, gru (models/forecaster.py)
      probe=False,           # True: frozen encoder, the head alone trains
      drop_path=0.0, head_dropout=0.0, hidden=64, revin=True,
      moving_avg=25,         # dlinear: the trend's moving-average kernel (odd; the paper's 25)
      individual=False,      # dlinear, nlinear: one linear map per variable (False: shared)
      eval_split="test", eval_every_epochs=5, plot_windows=4,
      plot_smooth=0,         # forecast_series.png: moving-average window in steps; 0 = raw
      init_from="")          # encoder export; "" = this run's pretrain, "random"


def ltsf_section() -> ml_collections.ConfigDict:
  """LTSF-Linear's recipe for the dlinear and nlinear baselines, over config.forecast's other
  fields: Adam, batch 32, lr 0.005 (lr = base_lr * batch / 256), 10 epochs (its ETTh1 scripts;
  it halves the lr every epoch and stops early on the validation loss, we keep the loop's
  cosine schedule and the last epoch), no RevIN (NLinear's own normalisation replaces it)."""
  return ml_collections.ConfigDict(dict(batch_size=32, base_lr=0.04, num_epochs=10,
                                        warmup_epochs=0, revin=False,
                                        lr_grid=()))  # () keeps the paper's rate; a grid searches


def ltsf_runs(config: ml_collections.ConfigDict, kind: str) -> list[registry.Run]:
  """The forecast stage with LTSF-Linear's `kind` from random init on config.ltsf's recipe,
  paired with the forecast stage (its seeds for data order and init)."""
  overrides = {"forecast.model": kind, "forecast.init_from": "random",
               **{f"forecast.{k}": v for k, v in config.ltsf.items()}}
  return [registry.Run(os.path.join("baselines", kind), "forecast", overrides,
                       seed_name="forecast")]


def smoke_series(config: ml_collections.ConfigDict, image_size: int) -> None:
  """config_lib.smoke for series: LTSF-Linear's batch as small as the stages'."""
  del image_size
  config.ltsf.batch_size = config.forecast.batch_size


def validate_series(config: ml_collections.ConfigDict, runs: list[registry.Run],
                    workdir: str) -> None:
  """A series dataset: 1-D patches of the look-back window, random masking."""
  del runs, workdir
  d, v = config.data, decode_variant(config.model.variant)
  if d.lookback < v.patch_size:
    raise ConfigError(f"config.data.lookback={d.lookback} is shorter than the patch length "
                      f"{v.patch_size} of config.model.variant={config.model.variant!r}")
  if not 0 <= config.model.patch_stride <= v.patch_size:
    raise ConfigError(f"config.model.patch_stride={config.model.patch_stride} must be in [0, "
                      f"{v.patch_size}] (the patch length; 0 = the patch length)")
  if config.model.mask_sampling != "random":
    raise ConfigError(f"config.model.mask_sampling={config.model.mask_sampling!r}: series "
                      f"take 'random' (block and grid are 2-D samplings)")
  if config.forecast.model not in KINDS:
    raise ConfigError(f"config.forecast.model must be one of {', '.join(KINDS)}, got "
                      f"{config.forecast.model!r}")
  if "seasonal_naive" in registry.names(config.baselines) and not (
      1 <= d.season <= d.lookback):
    raise ConfigError(f"config.data.season={d.season}: the seasonal naive forecast repeats the "
                      f"last season of the look-back, so 1 <= season <= config.data.lookback="
                      f"{d.lookback}")
  kernel = config.forecast.moving_avg
  if kernel < 1 or kernel % 2 == 0:
    raise ConfigError(f"config.forecast.moving_avg={kernel}: DLinear's moving-average kernel "
                      "must be odd and positive (the trend keeps the look-back's length)")
  if config.forecast.plot_smooth < 0:
    raise ConfigError(f"config.forecast.plot_smooth={config.forecast.plot_smooth}: a moving "
                      f"average's window in steps, or 0 for the raw series")
  selection.check_rates("config.ltsf.lr_grid", config.ltsf.lr_grid,
                        " (DLinear's and NLinear's own search; () keeps config.ltsf.base_lr)")
  if config.forecast.eval_split not in ("val", "test"):
    raise ConfigError(f"config.forecast.eval_split must be 'val' or 'test', got "
                      f"{config.forecast.eval_split!r}")


def validate_windows(config: ml_collections.ConfigDict, source: series_lib.Series,
                     runs: list[registry.Run]) -> None:
  windows = source.num_windows("train")
  for r in runs:
    batch = r.overrides.get(f"{r.stage}.batch_size", config[r.stage].batch_size)
    if batch > windows:
      raise ConfigError(f"config.{r.stage}.batch_size={batch} ({r.folder}) exceeds the "
                        f"{windows} training windows of {source.name}")


def patchtst_runs(config: ml_collections.ConfigDict) -> list[registry.Run]:
  """The same encoder pretrained with PatchTST's masking (removed patches zeroed, kept in the
  sequence), then the forecast stage from it."""
  del config
  folder = os.path.join("baselines", "patchtst")
  pretrain = os.path.join(folder, "pretrain")
  # Each run paired with its stage: only the masking differs.
  return [registry.Run(pretrain, "pretrain", {"model.encoder_mask_tokens": True,
                                              "model.mask_value": "zero"}, seed_name="pretrain"),
          registry.Run(folder, "forecast", {"forecast.model": "transformer",
                                            "forecast.init_from": registry.PRODUCED_BY + pretrain},
                       seed_name="forecast")]


registry.register(registry.Modality(
    name="series",
    serves=lambda config: (config.data.dataset in series_lib.NAMED
                           or config.data.dataset.startswith(PREFIXES))
    and "impute" not in registry.names(config.stages),
    load_source=series_source,
    stages=(registry.Stage("pretrain", title="pretrain (MAE loss)", section=pretrain_section,
                           needs_labels=False,
                           task=lambda c, source, workdir: pretrain_task(c, source)),
            registry.Stage("forecast", title="forecast (pretrained transformer)",
                           section=forecast_section, score="mse", maximize=False,
                           loads_encoder=lambda c: c.forecast.model == "transformer",
                           task=lambda c, source, workdir: forecast_task(c, workdir, source))),
    baselines=(registry.Baseline("forecast_random_init", "forecast, transformer from random init",
                                 twin="forecast"),
               registry.Baseline("persistence", "persistence (last value)",
                                 compute=lambda c, source, workdir: persistence(c, source)),
               registry.Baseline("seasonal_naive", "seasonal naive (last season repeated)",
                                 compute=lambda c, source, workdir: naive_scores(
                                     c, source, c.data.season)),
               *(registry.Baseline(k, title, runs=lambda c, k=k: ltsf_runs(c, k))
                 for k, title in LTSF_BASELINES.items()),
               *(registry.Baseline(k, title, twin="forecast", overrides={"forecast.model": k})
                 for k, title in FORECASTER_BASELINES.items()),
               registry.Baseline("patchtst", "forecast, PatchTST-style masked pretraining",
                                 runs=patchtst_runs)),
    model_size=lambda config: {"lookback": config.data.lookback},
    data_fields=data_fields,
    sections={"ltsf": ltsf_section},
    smoke=smoke_series,
    validate=validate_series,
    validate_data=validate_windows,
    summarize=lambda config, workdir, summary, source: compare_plot(config, workdir, summary,
                                                                      source),
))
