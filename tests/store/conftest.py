"""`loyalty_db`: one database per test module on each backend, for the loyalty store tests.

Every loyalty test makes a club of its own (tests/store/loyalty_helpers.py), so it needs no
empty database: sharing one per module saves emptying and opening a database for every test.
A test that asks for `loyalty_db` runs in its module's event loop, the one the database was
opened in. Tests that read across clubs (the daily jobs count what they did everywhere) use
`db` as before.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from store.database import Database, open_database
from tests.conftest import BACKENDS, _truncate


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use `loyalty_db` in the module's event loop (a mark of their own
    comes first, before the one asyncio_mode=auto gave every coroutine)."""
    for item in items:
        if "loyalty_db" in getattr(item, "fixturenames", ()):
            item.own_markers.insert(0, pytest.mark.asyncio(loop_scope="module").mark)


@pytest.fixture(scope="module", params=BACKENDS)
def loyalty_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("loyalty") / "klubb.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_schema")
    asyncio.run(_truncate(url))
    yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def loyalty_db(loyalty_url: str) -> AsyncIterator[Database]:
    database = open_database(loyalty_url)
    yield database
    await database.close()
