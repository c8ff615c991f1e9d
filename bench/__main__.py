"""`python -m mae_jax_bench ...` is `mae-jax-bench ...`: the flags and targets are run.py's.

  python -m mae_jax_bench --target=pretrain --variant=B/16 --image_size=224 --batch_size=8
"""

import sys

from mae_jax import allocator

if __name__ == "__main__":
  allocator.reexec()   # before JAX is imported; see mae_jax/allocator.py
  from . import run  # pylint: disable=g-import-not-at-top
  run.main(sys.argv)
