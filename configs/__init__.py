"""The shipped experiment configs: `mae-jax --config=configs/NAME.py[:args]` from a checkout, or
`--config=NAME[:args]` from anywhere once the package is installed (they travel in the wheel)."""
