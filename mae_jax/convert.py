"""mae-jax-convert: official MAE weights in and out (PyTorch .pth files, HF hub ViTMAE dirs).

  mae-jax-convert --input mae_pretrain_vit_base.pth --output /tmp/mae_b16
  mae-jax-convert --input ./vit-mae-base --output /tmp/mae_b16                # HF hub dir
  mae-jax-convert --input /tmp/mae_b16 --output mae.pth --format pth          # and back
  mae-jax-convert --input /tmp/mae_b16 --output ./hf_dir --format hf

(`python -m mae_jax.convert` is the same.) The default output is an mae_jax export (Orbax
params + model.json), what `config.<stage>.init_from` reads. From Python:
`model, variables = mae_jax.weights.load_torch(path)`. Reading .pth files needs PyTorch
(`pip install 'mae-jax[convert]'`); HF directories with model.safetensors do not.
The official weights are released under CC-BY-NC 4.0, not under mae_jax's license.
"""

import argparse
import json
from typing import Any

import jax
import numpy as np

from mae_jax import checkpoint, torch_format, weights

FORMATS = ("orbax", "pth", "hf")


def convert(input_path: str, output: str, fmt: str = "orbax", **overrides: Any
            ) -> dict[str, Any]:
  """Reads any supported input, writes `output` in `fmt`; returns the model description."""
  if fmt not in FORMATS:
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
  desc, params = weights.load(input_path, **overrides)
  params = jax.tree.map(np.asarray, params)
  if fmt == "orbax":
    checkpoint.export_params(output, params, desc)
  elif fmt == "pth":
    torch_format.save_pth(desc, params, output)
  else:
    torch_format.save_hf(desc, params, output)
  return desc


def _bool(text: str) -> bool:
  if text.lower() in ("1", "true", "yes"):
    return True
  if text.lower() in ("0", "false", "no"):
    return False
  raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog="mae-jax-convert", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--input", required=True,
                      help=".pth file, HF ViTMAE directory, or mae_jax export directory")
  parser.add_argument("--output", required=True, help="output directory (or .pth file)")
  parser.add_argument("--format", default="orbax", choices=FORMATS,
                      help="orbax: mae_jax export for init_from; pth: official layout; hf: HF dir")
  parser.add_argument("--num_heads", type=int, help="encoder heads (default: width / 64)")
  parser.add_argument("--decoder_heads", type=int, help="decoder heads (default: 16)")
  parser.add_argument("--image_size", type=int,
                      help="target resolution (resizes a learned position table)")
  parser.add_argument("--mask_ratio", type=float, help="MAE mask ratio (default 0.75)")
  parser.add_argument("--norm_pix_loss", type=_bool, help="MAE loss on normalised pixels")
  parser.add_argument("--ln_eps", type=float, help="layer-norm epsilon (default 1e-6)")
  args = parser.parse_args(argv)
  desc = convert(args.input, args.output, args.format, num_heads=args.num_heads,
                 decoder_heads=args.decoder_heads, image_size=args.image_size,
                 mask_ratio=args.mask_ratio, norm_pix_loss=args.norm_pix_loss,
                 ln_eps=args.ln_eps)
  print(f"wrote {args.output} ({args.format}): {json.dumps(desc)}", flush=True)


if __name__ == "__main__":
  main()
