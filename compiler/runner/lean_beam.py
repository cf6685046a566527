"""Beam's per-transform bookkeeping, done once per function instead of once per call.

A Transform of the default data builds a pipeline of ~1,500 Beam transforms (tf.Transform's
analyzers, one ``TransformDataset`` per split, the writers) and runs ~90 bundles of it. For
inputs this small, Beam's own bookkeeping outweighs the data work. Profiled on the default
data (15,000 rows, in memory), two calls of Beam's account for most of it:

- ``apache_beam.typehints.decorators.get_signature``: ``inspect.signature`` of a DoFn's
  methods, asked ~150,000 times for a few hundred distinct functions (every pipeline
  translation and every bundle re-inspects every DoFn);
- ``PipelineOptions.view_as``: builds a fresh argparse parser of every Beam option each time
  (~1,600 times), for the same handful of option classes.

:func:`lean_pipeline_construction` memoizes both while one pipeline is built and run, then
restores Beam's functions. :func:`skip_construction_type_check` turns off Beam's
construction-time type check (``--no_pipeline_type_check``), which re-checks the type hints
of every one of those transforms and cannot change what the pipeline computes.

The two memoized calls are pure in what they return: a function's signature does not
change while the pipeline runs (``inspect.Signature`` is immutable), and every view of a
``PipelineOptions`` shares its one ``_all_options`` dict, so the same view object returned
twice reads and writes exactly what two fresh views would. The Transform writes the same
examples, vocabularies and product table either way (``tests/test_transform_runners.py``
checks it against Beam left untouched).

Sources: ``apache_beam.typehints.decorators.get_signature`` and
``apache_beam.options.pipeline_options.PipelineOptions.view_as`` (Apache Beam 2.x).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

_lock = threading.Lock()


def _memoized_signature(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    signatures: dict[Any, Any] = {}

    def get_signature(function: Any) -> Any:
        try:
            return signatures[function]
        except KeyError:
            signature = signatures[function] = original(function)
            return signature
        except TypeError:  # an unhashable callable: ask Beam every time
            return original(function)

    return get_signature


def _memoized_view_as(original: Callable[[Any, type], Any]) -> Callable[[Any, type], Any]:
    # Keyed by id(): PipelineOptions defines no hashing of its own; the options object is kept
    # in the value, so its id cannot be reused by another object while the entry lives.
    views: dict[tuple[int, type], tuple[Any, Any]] = {}

    def view_as(options: Any, cls: type) -> Any:
        entry = views.get((id(options), cls))
        if entry is None or entry[0] is not options:
            entry = views[(id(options), cls)] = (options, original(options, cls))
        return entry[1]

    return view_as


@contextlib.contextmanager
def lean_pipeline_construction(enabled: bool = True) -> Iterator[None]:
    """Memoize Beam's signature inspection and option views while the body runs.

    ``enabled=False`` leaves Beam as it is (the reference path the tests compare against).
    """
    if not enabled:
        yield
        return
    # lazy: Beam: the Transform runner only
    from apache_beam.options import pipeline_options
    from apache_beam.transforms import core, ptransform, util
    from apache_beam.typehints import decorators

    # Each of these modules imported get_signature by name: patch every binding.
    holders = (decorators, core, ptransform, util)

    with _lock:  # one patch at a time: a second Transform in this process nests inside
        signatures = [holder.get_signature for holder in holders]
        view_as = pipeline_options.PipelineOptions.view_as
        memoized = _memoized_signature(decorators.get_signature)
        for holder in holders:
            holder.get_signature = memoized
        pipeline_options.PipelineOptions.view_as = _memoized_view_as(view_as)  # type: ignore[method-assign]
    try:
        yield
    finally:
        with _lock:
            for holder, original in zip(holders, signatures, strict=True):
                holder.get_signature = original
            pipeline_options.PipelineOptions.view_as = view_as  # type: ignore[method-assign]


def skip_construction_type_check(options: Any) -> None:
    """``--no_pipeline_type_check`` on ``options``, whatever the flags said."""
    # lazy: Beam: the Transform runner only
    from apache_beam.options.pipeline_options import TypeOptions

    options.view_as(TypeOptions).pipeline_type_check = False


__all__ = ["lean_pipeline_construction", "skip_construction_type_check"]
