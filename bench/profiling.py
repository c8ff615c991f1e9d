"""Where a jitted step spends its time: a jax.profiler trace and a table of its costliest ops.

The train-step benchmark (step.py) uses it after timing:

  python -m mae_jax_bench --target=pretrain --variant=B/16 --steps=2 --profile_dir=/tmp/mae_profile

The table goes to stderr; the trace in DIR also opens in Perfetto (ui.perfetto.dev, the
*.trace.json.gz file) or TensorBoard's profile plugin.
"""

import collections
import glob
import gzip
import json
import os
from typing import Any, Callable

import jax

# Host-side bookkeeping events, not work: left out of the table.
_HOST_NOISE = ("ThunkExecutor", "$", "PjitFunction", "SlinkyThreadPool", "CommonPjRt",
               "PjRtCApi", "ExecuteHelper")


def trace(run: Callable[[], Any], logdir: str) -> str:
  """Runs `run()` (which must block until its device work is done) under the profiler.

  Returns the Perfetto trace file written under `logdir`.
  """
  with jax.profiler.trace(logdir, create_perfetto_trace=True):
    run()
  files = sorted(glob.glob(os.path.join(logdir, "**", "*.trace.json.gz"), recursive=True),
                 key=os.path.getmtime)
  if not files:
    raise FileNotFoundError(f"jax.profiler wrote no *.trace.json.gz under {logdir}")
  return files[-1]


def op_table(trace_file: str, steps: int, top: int = 25) -> list[tuple[str, float, int]]:
  """The `top` ops by total time: (name, ms per step, calls per step).

  Counts device streams only where the trace has any (GPU, TPU); on CPUs XLA's ops run on
  host threads, and the table counts those less the host bookkeeping in _HOST_NOISE.
  """
  with gzip.open(trace_file) as f:
    data = json.load(f)
  events = data["traceEvents"] if isinstance(data, dict) else data
  names = {e["pid"]: e.get("args", {}).get("name", "") for e in events
           if e.get("ph") == "M" and e.get("name") == "process_name"}
  device_pids = {pid for pid, name in names.items() if "/device:" in name and "CPU" not in name}
  total, calls = collections.Counter(), collections.Counter()
  for e in events:
    if e.get("ph") != "X" or e["name"].startswith(_HOST_NOISE):
      continue
    if device_pids and e.get("pid") not in device_pids:
      continue
    total[e["name"]] += e.get("dur", 0)
    calls[e["name"]] += 1
  return [(name, us / 1000 / steps, calls[name] // steps) for name, us in total.most_common(top)]


def format_table(rows: list[tuple[str, float, int]]) -> str:
  """op_table's rows as aligned text, names cut at 70 characters."""
  width = max((len(name) for name, _, _ in rows), default=10)
  lines = [f"{'op':{min(width, 70)}}  ms/step  calls"]
  lines += [f"{name[:70]:{min(width, 70)}}  {ms:7.2f}  {n:5d}" for name, ms, n in rows]
  return "\n".join(lines)
