"""POSIX normalisation of artifact URIs turns gs://b/x into gs:/b/x."""

import os


def _graph_dir(fn_args):
    return os.path.normpath(fn_args.transform_output)  # <-


def run_fn(fn_args):
    graph = _graph_dir(fn_args)
    model_dir = os.path.abspath(fn_args.serving_model_dir)  # <-
    return graph, model_dir
