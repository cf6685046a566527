"""The Transform module's skeleton: ``preprocessing_fn`` and the date helpers it may need."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    TRANSFORM_FILE,
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)

PREPROCESSING_FN = '''
def preprocessing_fn(inputs):
    """Raw features -> the transformed features the trainer reads (names are stable)."""
    outputs = {}
    return outputs
'''

#: Calendar arithmetic in integer TensorFlow ops, so it runs inside the Transform graph and in
#: serving. ``_civil_from_days`` is Howard Hinnant's days -> (year, month, day) algorithm. Each
#: helper is emitted only when a feature of the compile uses it (see ``add_date_helpers``).
DATE_HELPERS: dict[str, str] = {
    "_days_since_epoch": '''
SECONDS_PER_DAY = 86400


def _days_since_epoch(timestamp):
    """Whole days since 1970-01-01 of an int64 Unix-seconds tensor."""
    return tf.math.floordiv(tf.cast(timestamp, tf.int64), SECONDS_PER_DAY)
''',
    "_civil_from_days": '''
def _civil_from_days(days):
    """(year, month, day_of_month) int64 tensors for days since 1970-01-01."""
    shifted = days + 719468
    era = tf.math.floordiv(shifted, 146097)
    day_of_era = shifted - era * 146097
    year_of_era = tf.math.floordiv(
        day_of_era
        - tf.math.floordiv(day_of_era, 1460)
        + tf.math.floordiv(day_of_era, 36524)
        - tf.math.floordiv(day_of_era, 146096),
        365,
    )
    day_of_year = day_of_era - (
        365 * year_of_era + tf.math.floordiv(year_of_era, 4) - tf.math.floordiv(year_of_era, 100)
    )
    month_index = tf.math.floordiv(5 * day_of_year + 2, 153)
    day = day_of_year - tf.math.floordiv(153 * month_index + 2, 5) + 1
    month = tf.where(month_index < 10, month_index + 3, month_index - 9)
    year = year_of_era + era * 400 + tf.cast(month <= 2, tf.int64)
    return year, month, day
''',
    "_days_from_civil": '''
def _days_from_civil(year, month, day):
    """Days since 1970-01-01 of a (year, month, day) date: the inverse of _civil_from_days."""
    year = year - tf.cast(month <= 2, tf.int64)
    era = tf.math.floordiv(year, 400)
    year_of_era = year - era * 400
    shifted_month = tf.where(month > 2, month - 3, month + 9)
    day_of_year = tf.math.floordiv(153 * shifted_month + 2, 5) + day - 1
    day_of_era = (
        year_of_era * 365
        + tf.math.floordiv(year_of_era, 4)
        - tf.math.floordiv(year_of_era, 100)
        + day_of_year
    )
    return era * 146097 + day_of_era - 719468
''',
    "_cycle": '''
def _cycle(position, period):
    """(sin, cos) of a position within a cycle of ``period`` steps."""
    angle = 2.0 * math.pi * tf.cast(position, tf.float32) / period
    return tf.math.sin(angle), tf.math.cos(angle)
''',
}


class TransformSkeleton(Fragment):
    kind: ClassVar[str] = "transform"
    name: ClassVar[str] = "tft"
    target: ClassVar[str] = TRANSFORM_FILE
    description: ClassVar[str] = "preprocessing_fn skeleton for tensorflow-transform"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        # tensorflow itself is imported by the feature transforms that use it: a module of
        # string id vocabularies alone needs only tft.
        out.require_import("tensorflow_transform", alias="tft")
        out.add(Section.ENTRY, statements(PREPROCESSING_FN))


def add_date_helpers(out: Contributions, needed: Iterable[str]) -> None:
    """Date features share one block of calendar helpers: those ``needed`` by the whole compile.

    The first date feature adds the block (later calls add nothing), so ``needed`` must name
    every helper any feature of the compile calls; a helper no feature calls is never emitted.
    """
    wanted = set(needed)
    unknown = sorted(wanted - DATE_HELPERS.keys())
    if unknown:
        raise ValueError(f"expected date helpers among {sorted(DATE_HELPERS)}, got {unknown}")
    out.require_import("tensorflow", alias="tf")
    if "_cycle" in wanted:
        out.require_import("math")
    source = "\n".join(text for helper, text in DATE_HELPERS.items() if helper in wanted)
    out.add_once("date-helpers", Section.HELPERS, statements(source))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [TransformSkeleton]
