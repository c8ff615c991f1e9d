"""Tabular imputation: the baseline imputers (scikit-learn), the metrics, and the files a run
leaves in WORKDIR/impute/predictions/.

Every imputer, these and the MAE stage alike, is fitted on `table.train` (the training rows,
removed and absent entries NaN) and fills `table.test`; its output goes through `finalize`:
  * observed test entries stay exactly as table.test has them;
  * a categorical column's missing one-hot group becomes the one-hot vector of its largest entry
    (the first on ties): every imputer answers with a category, as a reader of imputed.csv
    needs, and the metrics score that answer (a wrong category costs two entries of 1).
    ReMasker scores its raw outputs, but its tables are all numeric, where the two agree;
  * numbers are not clipped to [0, 1]: a test value may lie outside the training rows' range.

Baselines (BASELINE_IMPUTERS), each fitted on the training rows and then applied to the test
rows, their settings in the constants below:
  mean: each column's mean over its observed training entries; for a one-hot group the
    categories' shares, so the most frequent category after `finalize`.
  ffn: the study's baseline as its report describes it: one two-layer feed-forward network
    D -> FFN_HIDDEN -> D (ReLU between, linear out) on whole rows, the missing entries set to
    zero, trained to reconstruct the row's observed entries (squared error on those alone), then
    read at the missing ones of the test rows. The report gives no width, schedule or optimiser:
    ours are FFN_HIDDEN units, Adam at FFN_LR, FFN_EPOCHS epochs of batches of FFN_BATCH rows,
    initialised and shuffled from the seed (`ffn_init`, `ffn_loss`).
  mlp: one 2-layer MLP per original column: a hidden ReLU layer of MLP_HIDDEN units and a
    linear output (two weight layers; sklearn's MLPRegressor, Adam, early stopping on 10% of its
    rows) predicting the column (a categorical one: its one-hot group) from the row's other
    columns, missing ones at their training mean, and one 0/1 flag per other original column
    saying which are missing. Trained on the training rows where the column is observed, in one
    pass (no rounds of chained equations).
  knn: sklearn's KNNImputer, KNN_NEIGHBORS neighbours among the training rows, nan-Euclidean
    distance, uniform weights (its defaults).
  mice: sklearn's IterativeImputer with BayesianRidge and sample_posterior=True, as hyperimpute's
    "mice" plugin (the one ReMasker compares against: a single imputation drawn from each
    column's posterior; mean-initialised, ascending order), MICE_ROUNDS (10) rounds instead of
    its 100 (the draws keep it from converging anyway). Drawing adds noise: its RMSE is above the
    posterior mean's (ICE), its distributions closer.
  missforest: MissForest (Stekhoven & Buehlmann 2012) as scikit-learn's documentation builds it:
    IterativeImputer with a tree ensemble per column, here ExtraTreesRegressor with MissForest's
    (R randomForest's) regression defaults: FOREST_TREES (100) trees, leaves of at least
    FOREST_MIN_LEAF (5) rows, a third of the features tried per split; FOREST_ROUNDS (5) rounds
    at most (MissForest stops when the change grows, usually within 5). About 30 s for 16k
    training rows of 13 columns on 2 shared cores.
  mice and missforest see each one-hot group without its last column, and no column constant
    over its observed training entries (filled with that constant; `_iterative`).
  gain: GAIN (Yoon, Jordon & van der Schaar, ICML 2018) as hyperimpute implements it
    (GainImputation, the code behind its "gain" plugin that ReMasker compares against): a
    generator D*2 -> D -> D -> D and a discriminator alike, trained adversarially with hints on
    the training rows, then applied to the test rows. hyperimpute's plugin refits on whatever it
    transforms (transductive); the class is fitted on the training rows here, like every other
    imputer. The paper's settings, not the plugin's short default run (100 mini-batches):
    GAIN_ITERATIONS (10,000) mini-batches of GAIN_BATCH (128) rows, hint rate GAIN_HINT_RATE
    (0.9). Its reconstruction weight is hyperimpute's fixed 10 (GainImputation does not pass its
    loss_alpha on; the paper's is 100). Needs PyTorch and hyperimpute (OPTIONAL): a run without
    them skips it in one line (`missing_package`).
HyperImpute's own AutoML imputer and MIWAE (also in hyperimpute) are not registered: on 2 CPU
cores MIWAE's 500 epochs of 20 importance samples, or HyperImpute's model search, take hours on
tables of Adult's size.

Metrics (`impute_metrics`), on the test rows' removed entries in scaled units (min-max, [0, 1]
on the training rows):
  mse: mean squared error over every removed model entry (a removed categorical value counts
    once per column of its one-hot group): the study's first metric;
  rmse: its square root (ReMasker's);
  wd: the sum over model columns that lost entries of scipy's 1-D Wasserstein distance between
    the imputed and the true values of that column's removed entries: the study's second metric,
    defined as the project's tables issue quotes the report (the report is not to hand here).
    ReMasker's benchmark sums the distance over whole columns, observed entries included, which
    shrinks it by the share of observed entries. The study's baseline, 0.248 beside an MSE of
    0.0093, fits a sum: each column's distance is at most its mean absolute error, so a mean
    over columns that lose about as many entries each would stay near or below the RMSE, 0.096.

Files (`write_predictions`, `metrics_from_files`): imputed.csv and truth.csv (the test rows,
model columns, the file's units, every digit of a float64: truth empty where the file had no
value), missing.csv (1 where an entry was removed: the scored ones), scaling.json (each model
column's training min and max). `metrics_from_files` recomputes the metrics from those four
files alone; summary.json's are those.
"""

import csv
import functools
import importlib
import importlib.util
import json
import os
import typing
from typing import Any
import warnings

from etils import epath
import numpy as np

if typing.TYPE_CHECKING:
  import jax
  from mae_jax.data.tables import Table

BASELINE_IMPUTERS = ("mean", "ffn", "mlp", "knn", "mice", "missforest", "gain")
# Baselines that need a package mae_jax does not require: name -> (module, how to install it).
OPTIONAL = {"gain": ("hyperimpute", "pip install 'mae-jax[impute]' and then "
                                    "pip install --no-deps hyperimpute==0.1.17 (README)")}
# The study's FFN: it gives D -> D and two layers, nothing else; the rest is our choice.
FFN_HIDDEN = 64
FFN_EPOCHS = 100
FFN_BATCH = 64
FFN_LR = 1e-3
MLP_HIDDEN = 64
MLP_EPOCHS = 200
MLP_BATCH = 256
KNN_NEIGHBORS = 5
MICE_ROUNDS = 10
FOREST_TREES = 100
FOREST_MIN_LEAF = 5
FOREST_ROUNDS = 5
# Threads pay off on large tables only: on a few hundred rows they cost more than the trees.
FOREST_THREADS_FROM_ROWS = 5000
# GAIN's paper settings (its reference code's defaults).
GAIN_BATCH = 128
GAIN_HINT_RATE = 0.9
GAIN_ITERATIONS = 10000
IMPUTED_CSV, TRUTH_CSV, MISSING_CSV, SCALING_JSON = (
    "imputed.csv", "truth.csv", "missing.csv", "scaling.json")


def impute_baseline(name: str, table: "Table", seed: int) -> np.ndarray:
  """The test rows filled by baseline `name`: (n_test, D) float32, scaled, `finalize`d."""
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  imputers = {"mean": _mean, "ffn": _ffn, "mlp": _mlp, "knn": _knn, "mice": _mice,
              "missforest": _missforest, "gain": _gain}
  if name not in imputers:
    raise ValueError(f"no baseline imputer {name!r}; one of {BASELINE_IMPUTERS}")
  if (absent := missing_package(name)) is not None:
    raise ImportError(absent)
  with warnings.catch_warnings():
    # Fixed budgets, by design: IterativeImputer and MLPRegressor warn when one runs out.
    warnings.simplefilter("ignore", ConvergenceWarning)
    filled = imputers[name](table, seed)
  return finalize(table, filled)


def missing_package(name: str) -> str | None:
  """None when baseline `name` can run here; else one line saying what to install."""
  if name not in OPTIONAL:
    return None
  module, how = OPTIONAL[name]
  if importlib.util.find_spec(module) is not None and importlib.util.find_spec("torch"):
    return None
  return f"{name} needs {module} and torch, not installed: {how}"


def finalize(table: "Table", imputed: np.ndarray) -> np.ndarray:
  """imputed (n_test, D) scaled -> (n_test, D) float32: table.test's observed entries, the
  missing ones from `imputed`, each missing one-hot group snapped to its argmax. ValueError
  where a missing entry is left NaN or inf."""
  imputed = np.asarray(imputed, np.float32)
  if imputed.shape != table.test.shape:
    raise ValueError(f"imputed test rows have shape {imputed.shape}, the table's "
                     f"{table.test.shape}")
  missing = np.isnan(table.test)
  out = np.where(missing, imputed, table.test)
  bad = ~np.isfinite(out)
  if bad.any():
    row, column = np.argwhere(bad)[0]
    raise ValueError(f"imputed test rows: {bad.sum()} missing entries left NaN or inf (first: "
                     f"row {row}, column {table.columns[column]!r})")
  for name, group in zip(table.original_columns, table.groups):
    if name in table.categories:
      rows = np.flatnonzero(missing[:, group[0]])
      pick = out[np.ix_(rows, group)].argmax(1)
      out[np.ix_(rows, group)] = np.eye(len(group), dtype=np.float32)[pick]
  return out


# ---- the baselines: (table, seed) -> test rows, missing entries filled --------------------------

def _mean(table: "Table", seed: int) -> np.ndarray:
  del seed  # deterministic
  return np.where(np.isnan(table.test), np.nanmean(table.train, 0), table.test)


def _knn(table: "Table", seed: int) -> np.ndarray:
  del seed  # deterministic
  from sklearn.impute import KNNImputer  # pylint: disable=g-import-not-at-top
  imputer = KNNImputer(n_neighbors=KNN_NEIGHBORS, keep_empty_features=True)
  return imputer.fit(table.train).transform(table.test)


def _mice(table: "Table", seed: int) -> np.ndarray:
  return _iterative(table, dict(sample_posterior=True, max_iter=MICE_ROUNDS, random_state=seed))


def _missforest(table: "Table", seed: int) -> np.ndarray:
  from sklearn.ensemble import ExtraTreesRegressor  # pylint: disable=g-import-not-at-top
  forest = ExtraTreesRegressor(n_estimators=FOREST_TREES, min_samples_leaf=FOREST_MIN_LEAF,
                               max_features=1 / 3, random_state=seed,
                               n_jobs=-1 if len(table.train) >= FOREST_THREADS_FROM_ROWS else 1)
  return _iterative(table, dict(estimator=forest, max_iter=FOREST_ROUNDS, random_state=seed))


def _iterative(table: "Table", options: dict) -> np.ndarray:
  """sklearn's IterativeImputer(**options) fitted on the training rows, applied to the test
  rows, each one-hot group without its last column: with all k, a column is exactly one minus
  the others, a perfect fit whose zero residual breaks BayesianRidge's posterior
  (sample_posterior). The dropped column comes back as one minus the others. A column constant
  over its observed training entries (a rare category absent from them: Ames has several) is
  filled with that constant and left out: on a target of zero variance BayesianRidge's
  coefficients are NaN, which the next round's inputs would carry."""
  # Still experimental in scikit-learn: importing this module is what makes it importable.
  importlib.import_module("sklearn.experimental.enable_iterative_imputer")
  from sklearn.impute import IterativeImputer  # pylint: disable=g-import-not-at-top
  last = [g[-1] for n, g in zip(table.original_columns, table.groups) if n in table.categories]
  kept = np.setdiff1d(np.arange(len(table.columns)), last)
  seen = ~np.isnan(table.train[:, kept]).all(0)      # all-NaN ones: keep_empty_features
  low = np.nanmin(table.train[:, kept[seen]], 0)
  constant = kept[seen][low == np.nanmax(table.train[:, kept[seen]], 0)]
  varying = np.setdiff1d(kept, constant)
  imputer = IterativeImputer(keep_empty_features=True, **options)
  out = np.full(table.test.shape, np.nan)
  out[:, constant] = np.nanmax(table.train[:, constant], 0)
  out[:, varying] = imputer.fit(table.train[:, varying]).transform(table.test[:, varying])
  for name, group in zip(table.original_columns, table.groups):
    if name in table.categories:
      out[:, group[-1]] = 1 - out[:, group[:-1]].sum(1)
  return out


def _gain(table: "Table", seed: int) -> np.ndarray:
  # pylint: disable=g-import-not-at-top  (optional: the impute extra)
  import torch
  from hyperimpute.plugins.imputers import plugin_gain
  from hyperimpute.utils import distributions
  # Its draws (batches, hints, noise) come from numpy's and torch's global generators.
  distributions.enable_reproducible_results(seed)
  gain = plugin_gain.GainImputation(batch_size=GAIN_BATCH, n_epochs=GAIN_ITERATIONS,
                                    hint_rate=GAIN_HINT_RATE)
  gain.fit(torch.from_numpy(np.asarray(table.train, np.float64)))
  filled = gain.transform(torch.from_numpy(np.asarray(table.test, np.float64)))
  return np.asarray(filled, np.float64)


def ffn_init(key: "jax.Array", width: int, hidden: int) -> dict[str, "jax.Array"]:
  """The FFN's parameters: (width, hidden) and (hidden, width) LeCun-normal kernels (flax
  Dense's default), zero biases."""
  import jax  # pylint: disable=g-import-not-at-top
  init = jax.nn.initializers.lecun_normal()
  k1, k2 = jax.random.split(key)
  return {"w1": init(k1, (width, hidden)), "b1": jax.numpy.zeros(hidden),
          "w2": init(k2, (hidden, width)), "b2": jax.numpy.zeros(width)}


def ffn_apply(params: dict[str, "jax.Array"], rows: "jax.Array") -> "jax.Array":
  """rows (n, D), missing entries 0 -> (n, D): every entry reconstructed."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.nn.relu(rows @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def ffn_loss(params: dict[str, "jax.Array"], rows: "jax.Array", observed: "jax.Array"
             ) -> "jax.Array":
  """Mean squared error of the reconstruction over the observed entries alone: a missing
  entry's 0 is no target."""
  err = (ffn_apply(params, rows) - rows) ** 2 * observed
  return err.sum() / observed.sum().clip(1.0)


def _ffn(table: "Table", seed: int) -> np.ndarray:
  import jax  # pylint: disable=g-import-not-at-top
  rows = jax.numpy.asarray(np.nan_to_num(table.train, nan=0.0), np.float32)
  observed = jax.numpy.asarray(~np.isnan(table.train), np.float32)
  batch = min(FFN_BATCH, len(rows))
  steps = len(rows) // batch
  epoch, tx = _ffn_trainer()
  params = ffn_init(jax.random.key(seed), rows.shape[1], FFN_HIDDEN)
  carry = (params, tx.init(params))
  order_rng = np.random.default_rng(seed)
  for _ in range(FFN_EPOCHS):
    order = order_rng.permutation(len(rows))[:steps * batch].reshape(steps, batch)
    carry = epoch(carry, rows, observed, order)
  test = np.nan_to_num(table.test, nan=0.0).astype(np.float32)
  return np.asarray(ffn_apply(carry[0], test), np.float64)


@functools.cache
def _ffn_trainer() -> tuple[Any, Any]:
  """(epoch, optimizer): epoch(carry, rows, observed, order (steps, batch)) -> carry after one
  Adam step per batch. Compiled once per table shape: a scan, as thousands of tiny steps would
  otherwise cost their dispatch."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  tx = optax.adam(FFN_LR)

  def step(carry, batch, rows, observed):
    params, opt = carry
    grads = jax.grad(ffn_loss)(params, rows[batch], observed[batch])
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), opt), None

  def epoch(carry, rows, observed, order):
    return jax.lax.scan(lambda c, b: step(c, b, rows, observed), carry, order)[0]

  return jax.jit(epoch), tx

def _mlp(table: "Table", seed: int) -> np.ndarray:
  from sklearn.neural_network import MLPRegressor  # pylint: disable=g-import-not-at-top
  means = np.nanmean(table.train, 0)
  out = np.array(table.test, np.float64)
  for k, group in enumerate(table.groups):
    rows = np.flatnonzero(np.isnan(table.test[:, group[0]]))
    if not rows.size:
      continue
    fit_rows = np.flatnonzero(~np.isnan(table.train[:, group[0]]))
    stop_early = len(fit_rows) >= 50
    # Early stopping holds out a tenth of the rows; a batch is at most what is left.
    fitted = len(fit_rows) * 9 // 10 if stop_early else len(fit_rows)
    mlp = MLPRegressor(hidden_layer_sizes=(MLP_HIDDEN,), batch_size=min(MLP_BATCH, fitted),
                       max_iter=MLP_EPOCHS, early_stopping=stop_early, random_state=seed)
    target = table.train[np.ix_(fit_rows, group)]
    mlp.fit(_mlp_inputs(table, table.train[fit_rows], means, k),
            target[:, 0] if len(group) == 1 else target)
    predicted = mlp.predict(_mlp_inputs(table, table.test[rows], means, k))
    out[np.ix_(rows, group)] = predicted.reshape(len(rows), len(group))
  return out


def _mlp_inputs(table: "Table", rows: np.ndarray, means: np.ndarray, k: int) -> np.ndarray:
  """rows (m, D) with NaN -> (m, D - |group k| + G - 1): the other model columns, missing ones
  at their mean, then the other original columns' missing flags."""
  others = np.ones(rows.shape[1], bool)
  others[list(table.groups[k])] = False
  filled = np.where(np.isnan(rows), means, rows)[:, others]
  flags = np.isnan(rows[:, [g[0] for g in table.groups]])
  return np.concatenate([filled, np.delete(flags, k, axis=1)], 1).astype(np.float64)


# ---- metrics ------------------------------------------------------------------------------------

def impute_metrics(truth: np.ndarray, imputed: np.ndarray, removed: np.ndarray
                   ) -> dict[str, float]:
  """truth, imputed (n, D) scaled, removed (n, D) bool -> {"mse", "rmse", "wd", "removed_entries"}
  over the removed entries (module docstring)."""
  from scipy.stats import wasserstein_distance  # pylint: disable=g-import-not-at-top
  truth, imputed = np.asarray(truth, np.float64), np.asarray(imputed, np.float64)
  removed = np.asarray(removed, bool)
  if not truth.shape == imputed.shape == removed.shape:
    raise ValueError(f"shapes differ: truth {truth.shape}, imputed {imputed.shape}, removed "
                     f"{removed.shape}")
  if not removed.any():
    raise ValueError("no removed entry to score")
  if not (np.isfinite(truth[removed]).all() and np.isfinite(imputed[removed]).all()):
    raise ValueError("truth and imputed values must be finite at every removed entry")
  mse = np.mean((imputed[removed] - truth[removed]) ** 2)
  wd = sum(wasserstein_distance(imputed[removed[:, c], c], truth[removed[:, c], c])
           for c in np.flatnonzero(removed.any(0)))
  return {"mse": float(mse), "rmse": float(np.sqrt(mse)), "wd": float(wd),
          "removed_entries": int(removed.sum())}


# ---- files --------------------------------------------------------------------------------------

def write_predictions(out_dir: str, table: "Table", imputed: np.ndarray) -> dict[str, str]:
  """out_dir/{imputed,truth,missing}.csv and scaling.json for `imputed` (n_test, D), scaled and
  `finalize`d. -> {"imputed", "truth", "missing", "scaling"}: the paths."""
  if np.shape(imputed) != table.test.shape:
    raise ValueError(f"imputed test rows have shape {np.shape(imputed)}, the table's "
                     f"{table.test.shape}")
  folder = epath.Path(out_dir)
  folder.mkdir(parents=True, exist_ok=True)
  paths = {k: os.path.join(out_dir, f) for k, f in (
      ("imputed", IMPUTED_CSV), ("truth", TRUTH_CSV), ("missing", MISSING_CSV),
      ("scaling", SCALING_JSON))}
  for key, values in (("imputed", table.unscale(imputed)), ("truth", table.unscale(
      table.test_truth)), ("missing", table.test_removed.astype(np.int64))):
    with epath.Path(paths[key]).open("w") as f:
      writer = csv.writer(f, lineterminator="\n")
      writer.writerow(table.columns)
      writer.writerows([_cell(v) for v in row] for row in values.tolist())
  scaling = {c: {"min": float(lo), "max": float(hi)}
             for c, lo, hi in zip(table.columns, table.minimum, table.maximum)}
  epath.Path(paths["scaling"]).write_text(json.dumps(scaling, indent=1) + "\n")
  return paths


def metrics_from_files(out_dir: str) -> dict[str, float]:
  """`impute_metrics` from the four files of `write_predictions` alone."""
  scaling = json.loads(epath.Path(out_dir, SCALING_JSON).read_text())
  columns = list(scaling)
  low = np.array([scaling[c]["min"] for c in columns])
  high = np.array([scaling[c]["max"] for c in columns])
  scale = np.where(high > low, high - low, 1.0)
  read = {}
  for name in (IMPUTED_CSV, TRUTH_CSV, MISSING_CSV):
    with epath.Path(out_dir, name).open() as f:
      rows = list(csv.reader(f))
    if rows[0] != columns:
      raise ValueError(f"{os.path.join(out_dir, name)}: its header is not scaling.json's columns")
    read[name] = np.array([[float(v) if v else np.nan for v in r] for r in rows[1:]])
  removed = read[MISSING_CSV].reshape(-1, len(columns)) == 1
  return impute_metrics((read[TRUTH_CSV] - low) / scale, (read[IMPUTED_CSV] - low) / scale,
                        removed)


def predictions_match(out_dir: str, table: "Table") -> bool:
  """Whether out_dir holds a finished `write_predictions` (scaling.json is written last) for
  the columns and removed test entries of `table`."""
  if not epath.Path(out_dir, SCALING_JSON).exists():
    return False
  with epath.Path(out_dir, MISSING_CSV).open() as f:
    rows = list(csv.reader(f))
  removed = np.array([[v == "1" for v in r] for r in rows[1:]], bool)
  return (tuple(rows[0]) == tuple(table.columns) and removed.shape == table.test_removed.shape
          and bool(np.array_equal(removed, table.test_removed)))


def _cell(value: float | int) -> str:
  """Every digit a float64 needs to come back unchanged; empty for NaN."""
  if isinstance(value, int):
    return str(value)
  return "" if value != value else repr(value)
