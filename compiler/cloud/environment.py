"""The job's environment: the images a Vertex AI job can run in, and the locked requirements.

A Custom Job runs ``python -m compiler.runner.job`` in one of two ways:

* **custom container** (``submit.container_uri``; the default route): an image built from
  ``docker/Dockerfile`` with the lock below installed at build time, started with
  ``containerSpec``. Nothing is pip-installed when the job starts.
* **prebuilt image** (``submit.executor_image``): one of Google's prebuilt TensorFlow training
  images with ``pythonPackageSpec``; the lock is pip-installed when the job starts.

Every prebuilt TensorFlow training image Google lists is past its published end of
availability (see :data:`SUPPORTED_IMAGES`), so the default route is the custom container,
whose base image (:data:`DEFAULT_IMAGE`) is what the lock is resolved for.

The lock (``job-requirements.lock``, package data) is written by ``scripts/lock_job_env.py``
from :data:`JOB_REQUIREMENTS` and checked in CI against the registry for
:data:`DEFAULT_IMAGE`'s Python and platform.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources

LOCK_NAME = "job-requirements.lock"

#: What the job needs, before resolution. One coherent set: tensorflow-transform 1.17 needs
#: tfx-bsl 1.17.1, published only as manylinux_2_39 wheels (newer than Debian 12's glibc
#: 2.36), so the set is TensorFlow 2.16 with its tf-keras, tensorflow-transform/tfx-bsl 1.16
#: and scann 1.3.2 (the scann release built against TensorFlow 2.16; ``scann`` declares
#: ``tensorflow~=2.16.0``). tfx-bsl 1.16 caps pandas below 2. The last group is what the
#: recforge distribution itself requires (its ``dependencies``), so that installing recforge in
#: the job adds nothing unpinned.
JOB_REQUIREMENTS: tuple[str, ...] = (
    "tensorflow~=2.16.2",
    "tf-keras~=2.16.0",
    "tensorflow-recommenders>=0.7.3",
    "tensorflow-transform~=1.16.0",
    "scann~=1.3.2",
    # tensorflow-transform 1.16 imports dill without declaring it; Beam required it until 2.6x
    # and now only lists it under its own "tft" extra (which pins an older tft), so it is
    # named here.
    "dill",
    "pandas",
    "hydra-core>=1.3.2,<1.4",
    "omegaconf>=2.3,<2.4",
    "libcst>=1.1",
    "pluggy>=1.3",
    "pyflakes>=3.0",
    "rich>=13",
    "sqlalchemy>=2.0,<2.2",
)

#: Pinned packages that PyPI publishes only as a source distribution. Both are pure Python
#: (no compiled code, so no platform tag to check): ``--only-binary=:all:`` cannot fetch them,
#: and the lock check downloads their sdists instead.
SDIST_ONLY: dict[str, str] = {
    "antlr4-python3-runtime": "omegaconf/hydra-core's parser runtime; 4.9.3 has no wheel",
    "google-apitools": "apache-beam[gcp]'s GCS client; 0.5.31 has no wheel",
}

SUPPORTED_FRAMEWORKS_SOURCE = (
    "https://docs.cloud.google.com/vertex-ai/docs/supported-frameworks-list "
    "(Supported frameworks for custom training, TensorFlow)"
)


@dataclass(frozen=True)
class ExecutorImage:
    """One image the job can run in, with the dates its publisher gives."""

    uri: str
    python: str
    tensorflow: str | None
    #: The newest manylinux tag the image's glibc accepts (what wheels must be built for).
    platform: str
    #: End of patch and security support.
    end_of_support: dt.date
    #: After this date the image can no longer be pulled (prebuilt images only).
    end_of_availability: dt.date | None
    #: "container-base" (FROM line of docker/Dockerfile) or "prebuilt" (pythonPackageSpec).
    route: str
    source: str

    @property
    def python_version(self) -> str:
        return self.python

    def past_end(self, today: dt.date) -> dt.date | None:
        """The date this image stopped being usable or supported, if ``today`` is past it."""
        last = self.end_of_availability or self.end_of_support
        return last if today > last else None


#: The base of the job container (docker/Dockerfile's FROM): Debian 12 (glibc 2.36) with
#: CPython 3.11. Python 3.11 gets security fixes until October 2027 (PEP 664); Debian 12 is
#: supported (LTS) until June 2028. CI's machine is the same Debian 12 / CPython 3.11 pair.
DEFAULT_IMAGE = ExecutorImage(
    uri="python:3.11-slim-bookworm",
    python="3.11",
    tensorflow=None,
    platform="manylinux_2_36_x86_64",
    end_of_support=dt.date(2027, 10, 31),
    end_of_availability=None,
    route="container-base",
    source="https://peps.python.org/pep-0664/ (3.11 end of life 2027-10); "
    "https://wiki.debian.org/LTS (Debian 12 LTS to 2028-06-30)",
)

#: Google's prebuilt TensorFlow training images (CPU, Python 3.10), newest first. The
#: platform tag is that of their Ubuntu 22.04 base (glibc 2.35).
PREBUILT_IMAGES: tuple[ExecutorImage, ...] = tuple(
    ExecutorImage(
        uri=f"us-docker.pkg.dev/vertex-ai/training/tf-{device}.{tf_minor}.py310:latest",
        python="3.10",
        tensorflow=tf_minor.replace("-", "."),
        platform="manylinux_2_35_x86_64",
        end_of_support=support,
        end_of_availability=availability,
        route="prebuilt",
        source=SUPPORTED_FRAMEWORKS_SOURCE,
    )
    for tf_minor, support, availability in (
        ("2-17", dt.date(2025, 7, 11), dt.date(2026, 7, 11)),
        ("2-16", dt.date(2025, 6, 28), dt.date(2026, 6, 28)),
        ("2-15", dt.date(2024, 11, 14), dt.date(2025, 11, 14)),
    )
    for device in ("cpu", "gpu")
)

SUPPORTED_IMAGES: tuple[ExecutorImage, ...] = (DEFAULT_IMAGE, *PREBUILT_IMAGES)

#: The prebuilt image ``submit.executor_image`` names when a job uses pythonPackageSpec
#: without one set: the newest Google lists (past its end of availability; see above).
DEFAULT_PREBUILT_IMAGE = PREBUILT_IMAGES[0]


def _regional_variants(uri: str) -> set[str]:
    """The same image under each regional Artifact Registry host Google publishes."""
    if not uri.startswith("us-docker.pkg.dev/"):
        return {uri}
    tail = uri[len("us-docker.pkg.dev/"):]
    return {f"{region}-docker.pkg.dev/{tail}" for region in ("us", "europe", "asia")}


def find_image(uri: str) -> ExecutorImage | None:
    """The table entry for ``uri`` (any regional host), or ``None`` if recforge doesn't know it."""
    for image in SUPPORTED_IMAGES:
        if uri in _regional_variants(image.uri):
            return image
    return None


def image_warning(uri: str, today: dt.date | None = None) -> str | None:
    """One line to print at compile/submit time when ``uri`` is past its end date or its Python
    differs from the lock's; ``None`` when there is nothing to say (or the image is unknown)."""
    image = find_image(uri)
    if image is None:
        return None
    today = today or dt.date.today()
    problems = []
    ended = image.past_end(today)
    if ended is not None:
        what = "end of availability" if image.end_of_availability else "end of support"
        problems.append(f"past its published {what} ({ended.isoformat()})")
    if image.python != DEFAULT_IMAGE.python:
        problems.append(
            f"runs Python {image.python}, but the job lock is resolved for Python "
            f"{DEFAULT_IMAGE.python}"
        )
    if not problems:
        return None
    return (f"warning: image {uri} is " + " and ".join(problems)
            + "; build the job container instead (docker/Dockerfile, submit.container_uri)")


def parse_lock(text: str) -> list[str]:
    """The ``name==version`` lines of a lock file (comments and blank lines dropped)."""
    pins = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip() or " " in line:
            raise ValueError(f"{LOCK_NAME}:{number}: expected 'name==version', got {raw!r}")
        pins.append(f"{name.strip()}=={version.strip()}")
    return pins


def lock_text() -> str:
    return resources.files("compiler.cloud").joinpath(LOCK_NAME).read_text(encoding="utf-8")


def job_lock() -> list[str]:
    """The exact requirements a job installs: every ``name==version`` line of the lock."""
    return parse_lock(lock_text())
