"""mae-jax-predict: label maps for new images from a trained segment stage.

  mae-jax-predict --workdir=RUN --images=FOLDER --out=OUT

RUN is a workdir whose segment stage has trained (its config.json and segment/checkpoints; or
--stage=baselines/segment_random_init). Every image under FOLDER (any depth) goes through the
stage's evaluation path (whole image or sliding windows, as the run's config.segment says) and
its predicted label map is written to OUT/<path below FOLDER>.png at the image's own size, in
the training dataset's annotation encoding (ADE20K: class k as k + 1); OUT/overlays.png shows
the first few. (`python -m mae_jax.predict` is the same.)
"""

import json
import os
import sys

from absl import app, flags, logging

from mae_jax.errors import UserError

def predict(workdir: str, images: str, out: str, stage: str = "segment") -> dict[str, object]:
  """Writes the label maps; -> {"images", "out", "checkpoint", "step"}."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from etils import epath  # pylint: disable=g-import-not-at-top
  from mae_jax import weights  # pylint: disable=g-import-not-at-top
  from mae_jax.tasks import segmentation  # pylint: disable=g-import-not-at-top
  from mae_jax.data import seg_sources  # pylint: disable=g-import-not-at-top  (TensorFlow)

  config_json = epath.Path(workdir, "config.json")
  checkpoints = os.path.join(workdir, stage, "checkpoints")
  if not config_json.exists() or not epath.Path(checkpoints).exists():
    raise UserError(f"--workdir: {workdir} has no config.json and {stage}/checkpoints: pass the "
                    f"workdir of a run whose {stage} stage trained")
  config = ml_collections.ConfigDict(json.loads(config_json.read_text()))
  variables, step = weights.restore_state_variables(checkpoints)
  num_classes = variables["params"]["decode_head"]["classify"]["conv_seg"]["kernel"].shape[-1]
  model = segmentation.segment_model(config, num_classes)
  source = seg_sources.images_source(images)
  segmentation.write_predictions(config, model, variables, source, out, out_dir=out,
                                 encode=seg_sources.file_encoding(config.data.dataset))
  return {"images": source.num_examples("images"), "out": out, "checkpoint": checkpoints,
          "step": step}


def run(argv: list[str]) -> None:
  """The command line. Its flags are defined here, not on import, so that importing this
  module beside another program's (mae_jax.main's --workdir) defines nothing twice."""
  from mae_jax import cli_args  # pylint: disable=g-import-not-at-top
  workdir = flags.DEFINE_string("workdir", None, "A run's workdir with a trained segment stage.")
  images = flags.DEFINE_string("images", None, "Folder of images (any depth).")
  out = flags.DEFINE_string("out", None, "Folder for the label-map PNGs.")
  stage = flags.DEFINE_string("stage", "segment",
                              "The stage folder in the workdir whose model predicts.")
  flags.mark_flags_as_required(["workdir", "images", "out"])

  def main(args: list[str]) -> None:
    if len(args) > 1:
      raise app.UsageError(f"unexpected arguments: {args[1:]}")
    logging.set_verbosity(logging.WARNING)
    try:
      print(json.dumps(predict(workdir.value, images.value, out.value, stage.value)))
    except UserError as err:
      sys.exit(f"mae-jax-predict: error: {err}")

  cli_args.show_flags_in_help(__name__, argv[0])
  app.run(main, argv=argv)


if __name__ == "__main__":
  run(sys.argv)
