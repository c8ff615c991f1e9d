"""Test setup: 4 fake CPU devices, so data-parallel code runs as on a real host."""

import os

# Must happen before JAX initialises its backends. Subprocesses inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
