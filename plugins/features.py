"""Feature transforms: each writes its part of ``preprocessing_fn`` and declares its outputs.

``outputs(use)`` is the contract with the trainer: the transformed feature names, dtypes and
how the trainer encodes them. The trainer's feature tables are built from these declarations,
so the two modules cannot drift apart.
"""

from __future__ import annotations

from typing import ClassVar

import libcst as cst

from compiler import hookimpl
from compiler.fragments import (
    TRANSFORM_FILE,
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    TransformedFeature,
    expression,
    name,
    statements,
)
from compiler.model import (
    bucket_column,
    cross_column,
    cyclical_columns,
    embedding_column,
    normalized_column,
    target_column,
    vocabulary_file,
)
from plugins.transform import add_date_helpers

PREPROCESSING_FN = "preprocessing_fn"
#: Periods of the cyclical encodings, in the unit each position is counted in.
CYCLE_PERIODS = {"weekly": 7, "monthly": 31, "yearly": 366}


class FeatureTransform(Fragment):
    kind: ClassVar[str] = "feature_transform"
    target: ClassVar[str] = TRANSFORM_FILE

    @classmethod
    def outputs(cls, use: FragmentUse) -> list[TransformedFeature]:
        return []


def _numeric_value(use: FragmentUse, ctx: BuildContext, out: Contributions
                   ) -> tuple[cst.BaseExpression, list[cst.BaseStatement]]:
    """A float32 value of a numeric or timestamp feature (timestamps in days), and the
    statements that must come before it."""
    out.require_import("tensorflow", alias="tf")
    if use.params["dtype"] == "timestamp":
        days, before = _days(use, ctx, out)
        return expression("tf.cast({days}, tf.float32)", days=days), before
    return expression("tf.cast({raw}, tf.float32)", raw=_raw(use)), []


def _needs_days(use: FragmentUse) -> bool:
    """Whether a fragment use reads its feature as whole days since the epoch."""
    if use.kind != FeatureTransform.kind:
        return False
    return use.name == "cyclical" or (
        use.name in ("bucketize", "normalize") and use.params.get("dtype") == "timestamp"
    )


def _date_helpers(use: FragmentUse) -> set[str]:
    """The calendar helpers (plugins.transform.DATE_HELPERS) a fragment use calls."""
    if not _needs_days(use):
        return set()
    if use.name != "cyclical":
        return {"_days_since_epoch"}
    periods = use.params["periods"]
    needed = {"_days_since_epoch", "_cycle"}
    if "monthly" in periods or "yearly" in periods:
        needed.add("_civil_from_days")
    if "yearly" in periods:
        needed.add("_days_from_civil")
    return needed


def _days(use: FragmentUse, ctx: BuildContext, out: Contributions
          ) -> tuple[cst.Name, list[cst.BaseStatement]]:
    """``<feature>_days``, the feature as whole days since 1970-01-01, and the statement that
    computes it: the first use of the plan that needs a feature's days computes it, once, and
    later uses read the variable (``preprocessing_fn`` is filled in plan order)."""
    feature = use.params["feature"]
    days = name(f"{feature}_days")
    first = next(u for u in ctx.plan.uses if _needs_days(u) and u.params["feature"] == feature)
    if first is not use:
        return days, []
    add_date_helpers(out, set().union(*(_date_helpers(u) for u in ctx.plan.uses)))
    assign = statements("{days} = _days_since_epoch({raw})\n", days=days, raw=_raw(use))
    return days, list(assign.body)


def _raw(use: FragmentUse) -> cst.BaseExpression:
    return expression("inputs[{key}]", key=use.params["feature"])


class Embedding(FeatureTransform):
    name: ClassVar[str] = "embedding"
    description: ClassVar[str] = "string/int id -> vocabulary id (+ OOV buckets), embedded"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]

    @classmethod
    def outputs(cls, use: FragmentUse) -> list[TransformedFeature]:
        feature = use.params["feature"]
        return [TransformedFeature(
            name=embedding_column(feature), dtype="int64", side=use.params["side"],
            encoding="embedding",
            source=feature, vocab=vocabulary_file(feature), extra_ids=use.params["oov_buckets"],
            dim=use.params["dim"],
        )]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        (output,) = self.outputs(use)
        value = _raw(use)
        if use.params["dtype"] != "string":
            out.require_import("tensorflow", alias="tf")
            value = expression("tf.strings.as_string({raw})", raw=value)
        out.add_to_function(PREPROCESSING_FN, statements(
            "outputs[{name}] = tft.compute_and_apply_vocabulary(\n"
            "    {value}, num_oov_buckets={oov}, vocab_filename={vocab}\n"
            ")\n",
            name=output.name, value=value, oov=use.params["oov_buckets"], vocab=output.vocab,
        ))


class Cyclical(FeatureTransform):
    name: ClassVar[str] = "cyclical"
    description: ClassVar[str] = "timestamp -> sin/cos of day of week / month / year"
    EXAMPLES: ClassVar[list[list[str]]] = [[], ["features.buyer.1.cyclical=[yearly]"]]

    @classmethod
    def outputs(cls, use: FragmentUse) -> list[TransformedFeature]:
        feature = use.params["feature"]
        return [
            TransformedFeature(name=column, dtype="float32",
                               side=use.params["side"], encoding="dense", source=feature)
            for period in use.params["periods"] for column in cyclical_columns(feature, period)
        ]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        feature = use.params["feature"]
        days, code = _days(use, ctx, out)
        periods = use.params["periods"]
        if "monthly" in periods or "yearly" in periods:
            year = name(f"{feature}_year") if "yearly" in periods else name("_")
            dom = name(f"{feature}_dom") if "monthly" in periods else name("_")
            code += statements("{year}, _, {dom} = _civil_from_days({days})\n",
                               year=year, dom=dom, days=days).body
        for period in periods:
            position = {
                "weekly": "tf.math.floormod({days} + 3, 7)",  # 1970-01-01 was a Thursday
                "monthly": "{dom} - 1",
                "yearly": "{days} - _days_from_civil({year}, tf.ones_like({year}), "
                          "tf.ones_like({year}))",
            }[period]
            sin, cos = cyclical_columns(feature, period)
            code += statements(
                "outputs[{sin}], outputs[{cos}] = _cycle(" + position + ", {period})\n",
                sin=sin, cos=cos,
                days=days, dom=name(f"{feature}_dom"), year=name(f"{feature}_year"),
                period=CYCLE_PERIODS[period],
            ).body
        out.add_to_function(PREPROCESSING_FN, code)


class Bucketize(FeatureTransform):
    name: ClassVar[str] = "bucketize"
    description: ClassVar[str] = "numeric/timestamp -> quantile bucket index, embedded"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]

    @classmethod
    def outputs(cls, use: FragmentUse) -> list[TransformedFeature]:
        feature = use.params["feature"]
        return [TransformedFeature(
            name=bucket_column(feature), dtype="int64", side=use.params["side"], encoding="bucket",
            source=feature, size=use.params["buckets"], dim=use.params["embedding_dim"],
        )]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        (output,) = self.outputs(use)
        value, code = _numeric_value(use, ctx, out)
        out.add_to_function(PREPROCESSING_FN, [*code, *statements(
            "outputs[{name}] = tft.bucketize({value}, num_buckets={buckets})\n",
            name=output.name, value=value, buckets=use.params["buckets"],
        ).body])


class Normalize(FeatureTransform):
    name: ClassVar[str] = "normalize"
    description: ClassVar[str] = "numeric/timestamp -> z-score"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]

    @classmethod
    def outputs(cls, use: FragmentUse) -> list[TransformedFeature]:
        feature = use.params["feature"]
        return [TransformedFeature(name=normalized_column(feature), dtype="float32",
                                   side=use.params["side"], encoding="dense", source=feature)]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        (output,) = self.outputs(use)
        value, code = _numeric_value(use, ctx, out)
        out.add_to_function(PREPROCESSING_FN, [*code, *statements(
            "outputs[{name}] = tft.scale_to_z_score({value})\n",
            name=output.name, value=value,
        ).body])


class Cross(FeatureTransform):
    name: ClassVar[str] = "cross"
    description: ClassVar[str] = "hashed cross of member ids / bucket indexes, embedded"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]

    @classmethod
    def outputs(cls, use: FragmentUse) -> list[TransformedFeature]:
        members = [m["feature"] for m in use.params["members"]]
        return [TransformedFeature(
            name=cross_column(members), dtype="int64", side=use.params["side"], encoding="hashed",
            source=cross_column(members), size=use.params["hash_buckets"],
            dim=use.params["embedding_dim"],
        )]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        (output,) = self.outputs(use)
        out.require_import("tensorflow", alias="tf")
        parts = [
            expression("tf.strings.as_string(outputs[{column}])", column=m["column"])
            for m in use.params["members"]
        ]
        out.add_to_function(PREPROCESSING_FN, statements(
            # One line: the build wraps it to the line limit (the names' lengths vary).
            "outputs[{name}] = tf.strings.to_hash_bucket_fast("
            'tf.strings.join({parts}, separator="_x_"), num_buckets={buckets})\n',
            name=output.name, parts=cst.List([cst.Element(p) for p in parts]),
            buckets=use.params["hash_buckets"],
        ))


class Target(FeatureTransform):
    name: ClassVar[str] = "target"
    description: ClassVar[str] = "target -> clipped to percentiles (if clip), then log1p (if log)"
    EXAMPLES: ClassVar[list[list[str]]] = [
        [], ["features.target.log=false", "features.target.clip=null"]
    ]

    @classmethod
    def outputs(cls, use: FragmentUse) -> list[TransformedFeature]:
        column = use.params["column"]
        return [TransformedFeature(name=target_column(column), dtype="float32", side="target",
                                   encoding="target", source=column)]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        (output,) = self.outputs(use)
        out.require_import("tensorflow", alias="tf")
        column = use.params["column"]
        value = name(f"{column}_value")
        code = list(statements("{value} = tf.cast(inputs[{column}], tf.float32)\n",
                               value=value, column=column).body)
        clip = use.params["clip"]
        if clip is not None:
            # 1000 quantile buckets resolve percentiles to 0.1; p0 / p100 are the min / max.
            code += statements(
                "{bounds} = tft.quantiles({value}, num_buckets=1000, epsilon=0.0001)\n",
                bounds=name(f"{column}_quantiles"), value=value,
            ).body
            low = _percentile_expr(clip["lower_percentile"], "{low_index}")
            high = _percentile_expr(clip["upper_percentile"], "{high_index}")
            code += statements(
                "{value} = tf.clip_by_value({value}, " + low + ", " + high + ")\n",
                value=value, bounds=name(f"{column}_quantiles"),
                low_index=round(clip["lower_percentile"] * 10) - 1,
                high_index=round(clip["upper_percentile"] * 10) - 1,
            ).body
        if use.params["log"]:
            code += statements("{value} = tf.math.log1p({value})\n", value=value).body
        code += statements("outputs[{name}] = {value}\n", name=output.name, value=value).body
        out.add_to_function(PREPROCESSING_FN, code)


def _percentile_expr(percentile: float, index_placeholder: str) -> str:
    if percentile <= 0:
        return "tft.min({value})"
    if percentile >= 100:
        return "tft.max({value})"
    return "{bounds}[0, " + index_placeholder + "]"


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [Embedding, Cyclical, Bucketize, Normalize, Cross, Target]
