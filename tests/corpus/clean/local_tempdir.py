"""Local temp paths are local: os.path and open() on them are fine."""

import os
import shutil
import tempfile


def stage_locally(fn_args):
    import tensorflow as tf

    scratch = tempfile.mkdtemp(prefix="trainer_test_")
    local_model = os.path.join(scratch, os.path.basename(fn_args.serving_model_dir))
    if not os.path.exists(local_model):
        os.makedirs(local_model)
    with open(os.path.join(scratch, "notes.txt"), "w", encoding="utf-8") as handle:
        handle.write("staged")
    tf.io.gfile.copy(os.path.join(local_model, "saved_model.pb"),
                     f"{fn_args.serving_model_dir}/saved_model.pb", overwrite=True)
    shutil.rmtree(scratch)


def with_tempdir():
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "export"), exist_ok=True)
        return os.listdir(tmp)
