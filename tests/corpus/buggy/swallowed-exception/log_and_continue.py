"""The tutorial pattern: run_fn's helpers log every failure and carry on."""

import logging


def _evaluate_test_split(model, test_ds):
    try:
        return model.evaluate(test_ds, return_dict=True)
    except Exception as error:  # <-
        logging.error("test evaluation failed: %s", error)
        return {}


def run_fn(fn_args):
    metrics = _evaluate_test_split(None, None)
    try:
        metrics["recall_at_100"] = 0.0
    except BaseException:  # <-
        logging.exception("could not compute recall")
    return metrics, fn_args
