"""Splitting the train file URI by hand, then os.walk / glob.iglob over the result."""

import glob
import os


def _sibling(files, name):
    parent = files[0].rsplit("/", 1)[0].rsplit("/", 1)[0]
    return "/".join([parent, name])


def run_fn(fn_args):
    test_dir = _sibling(fn_args.train_files, "Split-test")
    found = []
    for root, _dirs, names in os.walk(test_dir):  # <-
        found.extend(os.path.join(root, n) for n in names)
    found.extend(glob.iglob(test_dir + "/*.gz"))  # <-
    return found
