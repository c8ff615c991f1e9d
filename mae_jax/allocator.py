"""A host allocator that keeps XLA's CPU buffers mapped, set by re-executing the entry point.

Why: XLA's CPU runtime allocates each step's temporary buffers afresh, some of them hundreds
of MB, which glibc's malloc maps and unmaps per call. Every step then page-faults its whole
working set in again, 4 KiB at a time: for the B/16 @224 batch-8 pretrain step on a 2-core
CPU, ~420,000 faults and 1.1-1.4 s of kernel time in a ~5.5 s step. PyTorch's CPU tensors
are mostly smaller and reused, so it pays ~0.3 s. Two remedies, in order of preference:

  * tcmalloc (Debian/Ubuntu: `apt install libtcmalloc-minimal4`), preloaded: freed blocks
    stay mapped; ~0 faults and 0.03 s of kernel time per step.
  * glibc >= 2.35 with transparent huge pages in "madvise" mode: the tunable
    `glibc.malloc.hugetlb=1` backs those mappings with 2 MiB pages (~1,500 faults per step).
    Cheap while the process has the machine to itself; when other processes churn memory the
    kernel must compact memory to find huge pages and the faults get dear again.

Both need to be in place when the process starts, hence the re-exec, done by `mae-jax` (or
`python -m mae_jax.main`) and `mae-jax-bench` (or `python -m mae_jax_bench`) before JAX is
imported. Nothing happens where
neither applies, where LD_PRELOAD already names an allocator or the tunable is set, or with
MAE_JAX_ALLOCATOR=system.
"""

import ctypes
import ctypes.util
import os
import sys

ENV_SWITCH = "MAE_JAX_ALLOCATOR"   # "system": leave malloc alone
HUGETLB = "glibc.malloc.hugetlb=1"
THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"
_ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")


def glibc_version() -> tuple[int, int] | None:
  try:
    name = os.confstr("CS_GNU_LIBC_VERSION") or ""       # e.g. "glibc 2.36"
  except (ValueError, OSError, AttributeError):
    return None
  parts = name.split()
  if len(parts) != 2 or parts[0] != "glibc":
    return None
  try:
    major, minor = (int(x) for x in parts[1].split(".")[:2])
  except ValueError:
    return None
  return major, minor


def thp_mode(path: str = THP_MODE_FILE) -> str | None:
  """The kernel's transparent-huge-page mode ("always", "madvise", "never"), or None."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return None
  start, end = text.find("["), text.find("]")
  return text[start + 1:end] if 0 <= start < end else None


def find_tcmalloc() -> str | None:
  return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def plan(environ: dict[str, str], tcmalloc: str | None, glibc: tuple[int, int] | None,
         mode: str | None) -> dict[str, str]:
  """The environment variables to add before re-executing; {} = run as is."""
  if environ.get(ENV_SWITCH) == "system" or not sys.platform.startswith("linux"):
    return {}
  if any(name in environ.get("LD_PRELOAD", "") for name in _ALLOCATORS) or \
      "glibc.malloc.hugetlb" in environ.get("GLIBC_TUNABLES", ""):
    return {}
  if tcmalloc:
    preload = " ".join(x for x in (environ.get("LD_PRELOAD"), tcmalloc) if x)
    # tcmalloc logs every allocation over 1 GiB by default; XLA's temp buffers can be that big.
    return {"LD_PRELOAD": preload, "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}
  if glibc is not None and glibc >= (2, 35) and mode == "madvise":
    return {"GLIBC_TUNABLES": ":".join(x for x in (environ.get("GLIBC_TUNABLES"), HUGETLB) if x)}
  return {}


def describe(environ: dict[str, str] | None = None) -> str:
  """What this process runs with, for benchmark reports: "tcmalloc", "glibc+thp" or "glibc"."""
  environ = os.environ if environ is None else environ
  preload = environ.get("LD_PRELOAD", "")
  for name in _ALLOCATORS:
    if name in preload:
      return name
  return "glibc+thp" if HUGETLB in environ.get("GLIBC_TUNABLES", "") else "glibc"


def reexec() -> None:
  """Replaces this process by the same command with `plan`'s variables, if there are any."""
  extra = plan(dict(os.environ), find_tcmalloc(), glibc_version(), thp_mode())
  if not extra:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], {**os.environ, **extra})


def keep_freed_memory() -> None:
  """Stops glibc's malloc from returning freed memory to the OS after every tensor (at runtime).

  For the input pipeline, whose TensorFlow buffers are mostly below glibc's 32 MB mmap cap;
  the re-exec above covers XLA's larger ones. No effect under tcmalloc.

  TensorFlow's CPU allocator is malloc; every decoded crop, resized image and batch is a fresh
  0.3-40 MB buffer. By default glibc unmaps or trims such buffers when they are freed, so the next
  one is faulted in again page by page: measured on 224 px batches of photos, that kernel time
  was a third of the pipeline's CPU time. Raising the mmap and trim thresholds (to glibc's
  maxima: 32 MB and 1 GB) keeps freed memory in the heap for reuse. The process's resident memory
  stays at its peak instead of shrinking. No-op without glibc.
  """
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return
  mallopt = getattr(libc, "mallopt", None)
  if mallopt is not None:
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3   # malloc.h
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_top_pad, 64 << 20)   # grow the heap in large steps, not a few pages at a time
