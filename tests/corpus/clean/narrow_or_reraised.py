"""Broad handlers that re-raise, and narrow handlers, are fine in run_fn."""

import logging
import sys


def _evaluate(model, test_ds):
    try:
        return model.evaluate(test_ds, return_dict=True)
    except Exception:
        logging.exception("test evaluation failed")
        raise


def run_fn(fn_args):
    try:
        import scann  # noqa: F401
    except ImportError:
        logging.warning("ScaNN not installed: brute force retrieval")
    try:
        metrics = _evaluate(None, None)
    except (ValueError, KeyError) as error:
        logging.error("bad test split: %s", error)
        sys.exit(1)
    return metrics, fn_args


def best_effort_log(message):
    try:
        logging.info(message)
    except Exception:  # not reachable from run_fn: a logging helper may swallow
        pass
