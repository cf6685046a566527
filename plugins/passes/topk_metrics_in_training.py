"""topk-metrics-in-training: a TFRS Retrieval task computes top-K metrics on training batches."""

from __future__ import annotations

from typing import ClassVar

import libcst as cst

from compiler.passes import Pass, Severity
from compiler.passes.source import dotted_name, walk


class TopkMetricsInTraining(Pass):
    """A Retrieval task with ``FactorizedTopK`` metrics is called without
    ``compute_metrics=not training``.

    ``FactorizedTopK`` scores every query against every candidate to rank them; doing it on
    every training batch makes training many times slower (tensorflow/recommenders#178, #119)
    and says nothing the validation pass does not. TFRS tasks take ``compute_metrics``; tie it
    to ``not training``.

    Reported: in a class, a call ``self.<attr>(...)`` inside ``compute_loss``/``train_step`` or
    any method with a ``training`` parameter, where ``self.<attr>`` is assigned a
    ``tfrs.tasks.Retrieval(...)`` built with ``metrics=``, and the call passes no
    ``compute_metrics`` or passes ``True``/``training``.
    """

    name: ClassVar[str] = "topk-metrics-in-training"
    severity: ClassVar[Severity] = Severity.WARNING
    MESSAGE: ClassVar[str] = "top-K retrieval metrics are computed on training batches"
    HAZARD: ClassVar[str] = "Top-K retrieval metrics computed on training batches"

    VALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow_recommenders as tfrs


class Model(tfrs.Model):
    def __init__(self, query, candidate, candidates):
        super().__init__()
        self.query, self.candidate = query, candidate
        self.task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=candidates)
        )
        self.rating_task = tfrs.tasks.Ranking()

    def compute_loss(self, features, training=False):
        q = self.query(features)
        c = self.candidate(features)
        return self.task(q, c, compute_metrics=not training) + self.rating_task(
            labels=features["y"], predictions=q
        )
''',
    )
    INVALID: ClassVar[tuple[str, ...]] = (
        '''\
import tensorflow_recommenders as tfrs


class Model(tfrs.Model):
    def __init__(self, query, candidate, candidates):
        super().__init__()
        self.query, self.candidate = query, candidate
        metrics = tfrs.metrics.FactorizedTopK(candidates=candidates)
        self.task = tfrs.tasks.Retrieval(metrics=metrics)

    def compute_loss(self, features, training=False):
        q = self.query(features)
        c = self.candidate(features)
        return self.task(q, c)  # <-
''',
    )

    def finish(self) -> None:
        assert self.file is not None
        if "Retrieval" in self.file.source:
            for node in self.file.nodes(cst.ClassDef):
                self._check_class(node)

    def _check_class(self, node: cst.ClassDef) -> None:
        sf = self.file
        assert sf is not None
        methods = [s for s in node.body.body if isinstance(s, cst.FunctionDef)]
        tasks: dict[str, cst.CSTNode] = {}
        for method in methods:
            for stmt in walk(method.body):
                if isinstance(stmt, cst.Assign):
                    targets = [t.target for t in stmt.targets]
                elif isinstance(stmt, cst.AnnAssign) and stmt.value is not None:
                    targets = [stmt.target]
                else:
                    continue
                if stmt.value is None or not self._is_topk_task(stmt.value, method):
                    continue
                for target in targets:
                    dotted = dotted_name(target)
                    if dotted is not None and dotted.startswith("self."):
                        tasks[dotted[5:]] = stmt
        if not tasks:
            return
        for method in methods:
            params = {p.name.value for p in (*method.params.params, *method.params.kwonly_params)}
            if method.name.value not in ("compute_loss", "train_step") and "training" not in params:
                continue
            for call in walk(method.body):
                if not isinstance(call, cst.Call):
                    continue
                dotted = dotted_name(call.func)
                if dotted is None or not dotted.startswith("self.") or dotted[5:] not in tasks:
                    continue
                flag = next(
                    (a.value for a in call.args
                     if a.keyword is not None and a.keyword.value == "compute_metrics"),
                    None,
                )
                if flag is None or (
                    isinstance(flag, cst.Name) and flag.value in ("True", "training")
                ):
                    self.report(
                        call,
                        f"`self.{dotted[5:]}(...)` is a Retrieval task with top-K metrics, "
                        "called here without `compute_metrics=not training`: FactorizedTopK "
                        "then ranks all candidates on every training batch",
                        related=[sf.location(tasks[dotted[5:]], "task with top-K metrics")],
                    )

    def _is_topk_task(
        self, value: cst.BaseExpression, method: cst.FunctionDef, depth: int = 0
    ) -> bool:
        """``tfrs.tasks.Retrieval(metrics=...)``, directly or through a local variable."""
        sf = self.file
        assert sf is not None
        if isinstance(value, cst.Name) and depth < 4:
            for stmt in walk(method.body):
                if isinstance(stmt, cst.Assign) and any(
                    isinstance(t.target, cst.Name) and t.target.value == value.value
                    for t in stmt.targets
                ):
                    return self._is_topk_task(stmt.value, method, depth + 1)
                if (
                    isinstance(stmt, cst.AnnAssign)
                    and stmt.value is not None
                    and isinstance(stmt.target, cst.Name)
                    and stmt.target.value == value.value
                ):
                    return self._is_topk_task(stmt.value, method, depth + 1)
            return False
        if not isinstance(value, cst.Call):
            return False
        qual = sf.qualname(value.func) or dotted_name(value.func) or ""
        if not qual.endswith("tasks.Retrieval") and not qual.endswith("retrieval.Retrieval"):
            if qual != "Retrieval":
                return False
        for arg in value.args:
            if arg.keyword is not None and arg.keyword.value == "metrics":
                return not (isinstance(arg.value, cst.Name) and arg.value.value == "None")
        positional = [a for a in value.args if a.keyword is None]
        return len(positional) >= 2  # Retrieval(loss, metrics, ...)
