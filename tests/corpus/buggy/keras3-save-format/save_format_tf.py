"""Keras 3 (no TF_USE_LEGACY_KERAS, no tf_keras) with the Keras 2 SavedModel save call."""

import tensorflow as tf


def export(model, fn_args, signatures):
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)  # <-
    checkpoint = tf.keras.callbacks.ModelCheckpoint(
        fn_args.model_run_dir, save_format="tf"  # <-
    )
    return checkpoint
