"""save_format="tf" is fine under Keras 2 (tf_keras)."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"


def export(model, fn_args, signatures):
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)


def export_keras3(model, path):
    import keras

    keras.saving.save_model(model, path + ".keras")
