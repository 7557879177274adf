"""Opening the ledger for commands that only read it: never create one by mistake.

`status` run in the wrong directory would otherwise create an empty `archiver.db` there and
report that nothing is wrong.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from archiver.errors import CommandError
from storage.ledger import Ledger, LedgerError
from storage.ledger.tables import windows as windows_table


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite ledger URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _has_ledger_tables(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            return inspect(conn).has_table(windows_table.name)
    except SQLAlchemyError as error:
        raise LedgerError(f"cannot open the ledger: {str(error).splitlines()[0]}") from None
    finally:
        engine.dispose()


def open_existing(url: str) -> Ledger:
    """The ledger at `url`; CommandError naming the setting when there is none there yet."""
    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            raise CommandError(
                f"ARCHIVER_LEDGER_URL: no ledger at {path.resolve()} ({url}); run this where "
                "`serve` runs, or set ARCHIVER_LEDGER_URL to its ledger"
            )
    elif not _has_ledger_tables(url):
        raise CommandError(
            f"ARCHIVER_LEDGER_URL: the database {make_url(url).render_as_string()} holds no "
            "ledger; `serve` creates one on its first start"
        )
    return Ledger.open(url)
