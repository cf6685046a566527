"""Where the ledger lives: resolving and checking ``ledger=`` / ``$RECFORGE_LEDGER_URL``.

Accepted, and nothing else:

- a SQLAlchemy URL of a supported dialect that parses fully: ``sqlite:///<file>`` or
  ``postgresql[+psycopg]://[user[:password]@]host[:port]/database``;
- a bare path ending in ``.db``, ``.sqlite`` or ``.sqlite3`` (a SQLite file there).

Anything else (``garbage``, ``::::``, ``postgresql:/nobody@host/x``) is an error, never a new
file beside the checkout. An existing file must carry SQLite's 16-byte header (an empty file is
a valid, empty SQLite database). The checks read at most those 16 bytes and create nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from compiler.errors import ConfigError, did_you_mean
from compiler.ledger.liveness import check_liveness_settings

ENV_URL = "RECFORGE_LEDGER_URL"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: ``drivername`` values the ledger opens (``postgresql`` means psycopg 3 here).
SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")
_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
_EXPECTED = (
    "a ledger URL (sqlite:///<file>, postgresql://user@host/database) or a SQLite file path "
    "ending in .db, .sqlite or .sqlite3"
)
# "postgresql:/x", "postgres:x", "sqlite:x.db": a scheme followed by something that is not "//".
_SCHEME_PREFIX = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?P<rest>(?!//).*)$")


def default_url(cwd: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///<cwd>/.recforge/ledger.db``: the per-project embedded ledger."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    return f"sqlite:///{(base / '.recforge' / 'ledger.db').resolve()}"


def chosen_url(url: str | os.PathLike[str] | None = None) -> tuple[str, str | None]:
    """``(raw value, config key it came from)``: explicit > ``$RECFORGE_LEDGER_URL`` > default.

    The key is ``None`` for the default (nothing the user wrote). An empty variable counts as
    unset, as shells make it easy to export one by accident.
    """
    if url is not None:
        return os.fspath(url), "ledger"
    from_env = os.environ.get(ENV_URL)
    if from_env:
        return from_env, ENV_URL
    return default_url(), None


def check_ledger_url(url: str | os.PathLike[str] | None = None) -> str:
    """The resolved ledger URL, or ``ConfigError`` naming ``ledger`` / ``RECFORGE_LEDGER_URL``.

    A bare SQLite path becomes ``sqlite:///<absolute path>``. The heartbeat settings
    (``ledger.liveness``) are checked too. No side effects: nothing is created, connected to
    or written.
    """

    check_liveness_settings()
    raw, key = chosen_url(url)
    key = key or "ledger"
    value = raw.strip()
    if "://" in value:
        resolved = _check_url(value, raw, key)
    else:
        resolved = _check_bare(value, raw, key)
    if resolved.startswith("sqlite"):
        _check_sqlite_file(Path(resolved.split(":///", 1)[1]), key)
    return resolved


def resolve_url(url: str | os.PathLike[str] | None = None) -> str:
    """The checked ledger URL (see ``check_ledger_url``)."""
    return check_ledger_url(url)


def _check_url(value: str, raw: str, key: str) -> str:
    plain = _plain_sqlite_database(value)
    if plain is not None:  # what make_url would parse, without importing SQLAlchemy (0.2 s)
        return f"sqlite:///{Path(plain).expanduser().resolve()}"
    # lazy: SQLAlchemy: the ledger's database only
    from sqlalchemy.engine import make_url

    scheme = value.split("://", 1)[0].lower()
    if scheme not in SUPPORTED_DRIVERS:
        suggestion = did_you_mean(scheme, _SCHEMES)
        problem = f"expected a sqlite or postgresql[+psycopg] URL, got {raw!r}"
        if scheme == "postgresql+psycopg2":
            problem += " (recforge uses psycopg 3: postgresql:// or postgresql+psycopg://)"
        raise ConfigError(
            key,
            problem,
            suggestion=f"{suggestion}://{value.split('://', 1)[1]}" if suggestion else None,
        )
    try:
        parsed = make_url(value)
    except Exception as error:  # noqa: BLE001 - ArgumentError, ValueError (a bad port) ...
        raise ConfigError(key, f"expected {_EXPECTED}, got {raw!r} ({error})") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:") or parsed.host:
            raise ConfigError(
                key,
                "expected sqlite:///<file>: the ledger needs a SQLite file (an in-memory "
                f"database would vanish with the process), got {raw!r}",
            )
        return f"sqlite:///{Path(database).expanduser().resolve()}"
    if not parsed.host and not parsed.database:
        raise ConfigError(key, f"expected postgresql://user@host/database, got {raw!r}")
    return value


def _plain_sqlite_database(value: str) -> str | None:
    """The file of ``sqlite:///<file>`` when ``<file>`` is plain text (no query, no percent
    escapes, not in-memory): SQLAlchemy's ``make_url`` reads it as that database unchanged.
    None for anything else, which ``make_url`` then checks."""
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if value.startswith(prefix):
            database = value[len(prefix):]
            if (database and database != ":memory:" and not database.startswith("file:")
                    and not any(char in database for char in "%?")):
                return database
    return None


def _check_bare(value: str, raw: str, key: str) -> str:
    prefix = _SCHEME_PREFIX.match(value)
    if prefix and len(prefix["scheme"]) > 1:  # "C:\..." is a drive letter, not a scheme
        scheme = prefix["scheme"].lower()
        close = scheme if scheme in _SCHEMES else did_you_mean(scheme, _SCHEMES)
        if close:
            rest = prefix["rest"].lstrip("/") if close.startswith("postgresql") else prefix["rest"]
            slashes = ":///" if close == "sqlite" else "://"
            raise ConfigError(
                key, f"expected {_EXPECTED}, got {raw!r}", suggestion=f"{close}{slashes}{rest}"
            )
    if not value or not value.lower().endswith(SQLITE_SUFFIXES):
        raise ConfigError(key, f"expected {_EXPECTED}, got {raw!r}")
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def _check_sqlite_file(path: Path, key: str) -> None:
    """An existing path must be a SQLite file; a missing one must be creatable (its nearest
    existing ancestor a directory). Reads at most 16 bytes; creates nothing."""
    if path.is_dir():
        raise ConfigError(key, f"expected a SQLite database file, got the directory {path}")
    if path.exists():
        try:
            with path.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError as error:
            raise ConfigError(
                key, f"expected a readable SQLite database file, got {path} ({error.strerror})"
            ) from None
        if header and header != SQLITE_HEADER:
            raise ConfigError(
                key, f"expected a SQLite database file, got {path}, which is not a database"
            )
        return
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    key, f"expected a SQLite file path in a directory, got {path} "
                    f"({parent} is a file)"
                )
            return
