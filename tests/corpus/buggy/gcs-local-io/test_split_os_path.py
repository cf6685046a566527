"""Issue #2 of the platform write-up: the test split is looked up with os.path and glob."""

import glob
import logging
import os


def run_fn(fn_args):
    test_split_dir = os.path.join(
        os.path.dirname(os.path.dirname(fn_args.train_files[0])), "Split-test"
    )
    if os.path.exists(test_split_dir):  # <-
        test_files = glob.glob(os.path.join(test_split_dir, "*.gz"))  # <-
        logging.info("test files: %s", test_files)
    else:
        logging.warning("No test split found - skipping test evaluation")
