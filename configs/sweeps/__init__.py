"""Sweep files for mae-jax-sweep (mae_jax/sweep.py): axes of config overrides."""
