"""contextlib.suppress(Exception) and a bare except in code run_fn runs."""

import contextlib
import logging


def _export(model, path):
    with contextlib.suppress(Exception):  # <-
        model.save(path)


def run_fn(fn_args):
    _export(None, fn_args.serving_model_dir)
    try:
        logging.info("exported")
    except:  # noqa: E722  # <-
        logging.warning("could not log")
