"""Benchmarks of mae_jax: the folder bench/, installed as the package `mae_jax_bench`.

  mae-jax-bench --target=input|pretrain|finetune|segment|timeseries|segment3d ...
                                                        # = python -m mae_jax_bench (run.py)
  python -m mae_jax_bench.torch_mae [--compare] ...     # the PyTorch side (HF ViTMAE)
  python -m mae_jax_bench.torch_patchtst [--compare]    # HF PatchTST (series.py's step)
  python -m mae_jax_bench.torch_unetr [--compare]       # MONAI's UNETR (volumes.py's step)
  python -m mae_jax_bench.attention_kinds               # attention kinds per shape
  bash bench/gpu.sh                                     # the GPU measurements in one go

run.py (the command), step.py (train step, timed_rounds), series.py and volumes.py (the
time-series and UNETR steps), pipeline.py (input pipeline) with
pil_loader.py (its PIL baseline) and fixture.py (JPEGs to read), peaks.py (peak FLOP/s, MFU),
profiling.py (costliest ops of a step).
"""
