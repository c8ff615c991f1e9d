"""What a sweep file declares: axes of config overrides, and how they become runs.

A sweep file (configs/sweeps/*.py) defines `get_sweep(config) -> Sweep`, given the experiment
config it will vary (with the command line's --config.x=y applied), so that it can scale its
values to that config (a decoder width relative to the config's):

  def get_sweep(config):
    return sweep_lib.Sweep(axes=[
        sweep_lib.axis("mask_ratio", "model.mask_ratio", [0.25, 0.5, 0.75, 0.9]),
        sweep_lib.labelled("augmentation", {"none": {...}, "crop": {}}),
        sweep_lib.grid("sampling x ratio", {"model.mask_sampling": [...],
                                            "model.mask_ratio": [...]}),
    ], common={"baselines": ""})

Each point is a set of overrides on top of the config. Overrides that equal the config's own
value are dropped, so the points of different axes that are the same run (the default of each
axis) share one run folder: "baseline" for the config as given.
"""

import dataclasses
import itertools
import math
import re
from typing import Any, Iterable, Mapping, Sequence

import ml_collections

from mae_jax.errors import ConfigError

BASELINE = "baseline"


@dataclasses.dataclass(frozen=True)
class Point:
  """One value of an axis: its label, its overrides, where the plot puts it."""
  label: str
  overrides: tuple[tuple[str, Any], ...]   # (config field "model.mask_ratio", value)
  x: Any = None                            # numeric position on the plot, or None (categorical)
  series: str = ""                         # a grid's line: the values of the other fields


@dataclasses.dataclass(frozen=True)
class Axis:
  """A panel of the plot and a section of the table."""
  name: str
  points: tuple[Point, ...]


@dataclasses.dataclass(frozen=True)
class Sweep:
  axes: Sequence[Axis]
  # Overrides for every point (e.g. no baselines: they do not depend on the swept choices).
  common: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _number(value: Any) -> float | None:
  is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
  return float(value) if is_number else None


def axis(name: str, field: str, values: Iterable[Any]) -> Axis:
  """One config field at several values: 'model.mask_ratio', [0.25, 0.5, 0.75]."""
  return Axis(name, tuple(Point(_label(v), ((field, v),), _number(v)) for v in values))


def labelled(name: str, points: Mapping[str, Mapping[str, Any]]) -> Axis:
  """Named sets of overrides: {"none": {"pretrain.crop_scale": (1.0, 1.0)}, "crop": {}}."""
  return Axis(name, tuple(Point(label, tuple(overrides.items())) for label, overrides in
                          points.items()))


def grid(name: str, fields: Mapping[str, Sequence[Any]]) -> Axis:
  """Every combination of several fields' values; the plot's x is the first field, a line per
  combination of the others."""
  names = list(fields)
  points = []
  for combo in itertools.product(*fields.values()):
    overrides = tuple(zip(names, combo))
    series = ", ".join(f"{_short(f)}={_label(v)}" for f, v in overrides[1:])
    label = ", ".join(f"{_short(f)}={_label(v)}" for f, v in overrides)
    points.append(Point(label, overrides, _number(combo[0]), series))
  return Axis(name, tuple(points))


def _short(field: str) -> str:
  return field.rsplit(".", 1)[-1]


def _label(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    return "-".join(_label(v) for v in value)
  return str(value)


def get_field(config: ml_collections.ConfigDict, field: str) -> Any:
  """config["model.mask_ratio"]; ConfigError naming the field if the config has none."""
  node = config
  for part in field.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise ConfigError(f"unknown config field {field!r}")
    node = node[part]
  return node


def _same(a: Any, b: Any) -> bool:
  if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
  if _number(a) is not None and _number(b) is not None:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
  return type(a) is type(b) and a == b


def effective(config: ml_collections.ConfigDict, overrides: Iterable[tuple[str, Any]]
              ) -> tuple[tuple[str, Any], ...]:
  """The overrides that change `config` (others dropped), checked against the fields' types."""
  out = []
  for field, value in overrides:
    current = get_field(config, field)
    if isinstance(current, bool) != isinstance(value, bool) or (
        isinstance(current, str) != isinstance(value, str)) or (
        isinstance(current, (tuple, list)) != isinstance(value, (tuple, list))):
      raise ConfigError(f"{field}={value!r}: the config's value is {current!r}, of another type")
    if not _same(current, value):
      out.append((field, value))
  return tuple(out)


def run_name(overrides: tuple[tuple[str, Any], ...]) -> str:
  """A folder name for a set of effective overrides: 'baseline' when there are none."""
  if not overrides:
    return BASELINE
  text = "__".join(f"{field}={_label(value)}" for field, value in overrides)
  return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def flag(field: str, value: Any) -> str:
  """--config.FIELD=VALUE as ml_collections' config flags parse it back to `value`."""
  if isinstance(value, (tuple, list)):
    text = "(" + ", ".join(repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
  else:
    text = str(value)
  return f"--config.{field}={text}"
