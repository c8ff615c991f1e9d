"""The images a run could not read: left out at the scan, or skipped when they failed to decode.

A folder's scan (images.py) leaves out files whose header does not parse; a file whose header
parses but whose data does not decode (truncated, corrupt) is found only when the pipeline
decodes it, and skipped there (refill.py). `SkipLog` keeps both: one line at the end of every
epoch that skipped images, and the stage's total for result.json (and so summary.json):

  "skipped_files": {"count": 7, "at_scan": 2, "at_decode": 5, "first": ["a/x.jpg", ...]}

"at_decode" counts distinct files, each process's found ones together (`result`'s `union`). A
resumed stage counts what it decoded since it resumed. No TensorFlow here.
"""

import dataclasses
from typing import Any, Callable

import numpy as np

SHOWN = 5          # names in a log line
RESULT_SHOWN = 20  # names in result.json
RESULT_KEY = "skipped_files"


@dataclasses.dataclass(frozen=True)
class Unreadable:
  """Files a dataset's scan left out: how many, and the first of them by name."""
  count: int = 0
  first: tuple[str, ...] = ()


def listing(names: list[str], count: int | None = None) -> str:
  """`names`' first SHOWN, comma-separated, with " ..." when `count` (default: their number)
  is larger."""
  count = len(names) if count is None else count
  return ", ".join(names[:SHOWN]) + (" ..." if count > SHOWN else "")


class SkipLog:
  """The training examples of one split that were skipped because they did not decode.

  num_examples: the split's size; name(index) -> how a log names its example; scanned: the
  dataset's files left out at the scan; log: where the end-of-epoch lines go.
  """

  def __init__(self, num_examples: int, name: Callable[[int], str],
               scanned: Unreadable = Unreadable(), log: Callable[[str], None] = print):
    self.name, self.scanned, self.log = name, scanned, log
    self._seen = np.zeros(num_examples, bool)   # skipped at least once, by index
    self._epoch: dict[int, list[int]] = {}      # epoch -> indices skipped in it, in order

  def add(self, epoch: int, indices: np.ndarray) -> None:
    """Examples `indices` (split indices) of a step of `epoch` did not decode."""
    if len(indices):
      self._seen[indices] = True
      self._epoch.setdefault(epoch, []).extend(int(i) for i in indices)

  def end_epoch(self, epoch: int) -> None:
    """Logs the images skipped in `epoch`, if any, in one line."""
    skipped = sorted(set(self._epoch.pop(epoch, [])))
    if skipped:
      names = [self.name(i) for i in skipped]
      self.log(f"epoch {epoch + 1}: skipped {len(skipped)} images that do not decode (their "
               f"batch slots took the next images): {listing(names)}; "
               f"{int(self._seen.sum())} files in all so far")

  def seen(self) -> np.ndarray:
    """bool (num_examples,): the examples skipped so far, in this process."""
    return self._seen.copy()

  def result(self, union: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """{RESULT_KEY: {...}} for result.json (see the module docstring), or {} when nothing was
    skipped. union(seen) -> the same mask over every process (None: one process)."""
    seen = self.seen() if union is None else union(self.seen())
    decoded = [self.name(int(i)) for i in np.flatnonzero(seen)[:RESULT_SHOWN]]
    count = self.scanned.count + int(seen.sum())
    if not count:
      return {}
    first = (list(self.scanned.first) + decoded)[:RESULT_SHOWN]
    return {RESULT_KEY: {"count": count, "at_scan": self.scanned.count,
                         "at_decode": int(seen.sum()), "first": first}}
