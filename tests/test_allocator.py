"""allocator.py: which allocator the entry points re-execute with, and that they do."""

import os
import subprocess
import sys

from mae_jax import allocator
from tests.helpers import REPO

TC = "libtcmalloc_minimal.so.4"


def test_plan_prefers_tcmalloc_then_huge_pages():
  assert allocator.plan({}, TC, (2, 36), "madvise")["LD_PRELOAD"] == TC
  assert allocator.plan({"LD_PRELOAD": "libfoo.so"}, TC, None, None)["LD_PRELOAD"] == \
      f"libfoo.so {TC}"
  assert allocator.plan({}, None, (2, 36), "madvise") == {"GLIBC_TUNABLES": allocator.HUGETLB}
  assert allocator.plan({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, None, (2, 36),
                        "madvise") == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:"
                                       + allocator.HUGETLB}


def test_plan_leaves_alone_what_it_cannot_help_or_was_told_to():
  assert allocator.plan({}, None, (2, 34), "madvise") == {}      # glibc too old for the tunable
  assert allocator.plan({}, None, (2, 36), "never") == {}        # THP off
  assert allocator.plan({}, None, (2, 36), "always") == {}       # THP already everywhere
  assert allocator.plan({}, None, None, "madvise") == {}         # not glibc
  assert allocator.plan({"MAE_JAX_ALLOCATOR": "system"}, TC, (2, 36), "madvise") == {}
  assert allocator.plan({"LD_PRELOAD": "/x/libjemalloc.so.2"}, TC, (2, 36), "madvise") == {}
  # After the re-exec the plan is empty: no loop.
  once = allocator.plan({}, TC, (2, 36), "madvise")
  assert allocator.plan(once, TC, (2, 36), "madvise") == {}


def test_describe():
  assert allocator.describe({"LD_PRELOAD": "libtcmalloc_minimal.so.4"}) == "tcmalloc"
  assert allocator.describe({"GLIBC_TUNABLES": allocator.HUGETLB}) == "glibc+thp"
  assert allocator.describe({}) == "glibc"


def test_reexec_restarts_the_same_command_with_the_plan():
  env = {k: v for k, v in os.environ.items()
         if k not in ("LD_PRELOAD", "GLIBC_TUNABLES", "MAE_JAX_ALLOCATOR")}
  expected = allocator.describe(allocator.plan(
      env, allocator.find_tcmalloc(), allocator.glibc_version(), allocator.thp_mode()))
  program = ("import sys; from mae_jax import allocator; allocator.reexec(); "
             "print(allocator.describe(), sys.argv[1:])")
  proc = subprocess.run([sys.executable, "-c", program, "a", "b"], cwd=REPO,
                        env=dict(env, PYTHONPATH=REPO), capture_output=True, text=True,
                        timeout=60)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == f"{expected} ['a', 'b']"
