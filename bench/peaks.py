"""Peak FLOP/s per device, and the model FLOPs utilisation (MFU) the train-step benchmarks report.

Both sides of the comparison use it: ours (step.py, `python -m mae_jax_bench --target=pretrain`)
and PyTorch's (`python -m mae_jax_bench.torch_mae`), so their `mfu` fields divide by the same peak.
"""

# Dense peak FLOP/s per device by jax device_kind prefix (vendor datasheets); float32 on
# GPUs means TF32 tensor cores, which XLA uses for float32 matmuls by default.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "NVIDIA H100": {"bfloat16": 989e12, "float32": 495e12},
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 495e12},
    "NVIDIA A100": {"bfloat16": 312e12, "float32": 156e12},
    "TPU v4": {"bfloat16": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12},
    "TPU v5p": {"bfloat16": 459e12},
    "TPU v6 lite": {"bfloat16": 918e12},
}


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """The device's peak for `dtype`, or None where unknown (CPUs, unlisted accelerators)."""
  for prefix, peaks in PEAK_FLOPS.items():
    if device_kind.startswith(prefix):
      return peaks.get(dtype)
  return None


def mfu(flops_per_image: float, images_per_sec: float, device_kind: str, dtype: str,
        num_devices: int = 1) -> float | None:
  """Model FLOPs per second over the devices' peak, rounded to 4 decimals; None where unknown."""
  peak = peak_flops(device_kind, dtype)
  if not peak:
    return None
  return round(flops_per_image * images_per_sec / (peak * num_devices), 4)
