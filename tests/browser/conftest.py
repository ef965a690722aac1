"""Browser tests: the real app on a free port, driven by Playwright in Debian's chromium.

Playwright's own browser download can't be used here: it launches /usr/bin/chromium
(`apt-get install -y chromium`; .ci/run installs it when it is missing). Every page visited is
saved as a screenshot in tests/browser/artifacts/ to look at."""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from playwright.sync_api import expect

from bot.app import create_app
from bot.settings import Settings
from store.database import Database, open_database
from tests.admin.conftest import OWNER, PASSWORD, create_account, create_member
from tests.conftest import AUTH_TOKEN, create_club

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 5000
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1100, "height": 760}
WIDE = {"width": 1280, "height": 800}
T = TypeVar("T")


class LiveServer:
    """The app served by aiohttp's AppRunner on its own event loop in a thread, as
    `klubb serve` would serve it (the test's thread is left free for Playwright's sync API)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="live-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the live server did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(create_app(self.settings))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Demo:
    """What the browser finds: the demo club, two members and its owner's account."""

    club: int
    members: dict[str, int] = field(default_factory=dict)


async def _fill(url: str) -> Demo:
    db = open_database(url)
    try:
        demo = Demo(await create_club(db))
        demo.members["Kari"] = await create_member(db, demo.club, "+4791234567", "Kari")
        demo.members["Ola"] = await create_member(db, demo.club, "+4798765432", "Ola")
        await create_account(db, demo.club, OWNER)
        return demo
    finally:
        await db.close()


@pytest.fixture
def demo_url(sqlite_template: Path, tmp_path: Path, cheap_argon2: None) -> str:
    """A fresh migrated SQLite database (a copy of the template) for the demo club."""
    path = tmp_path / "klubb.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def run_apart(coroutine: Any) -> Any:
    """Run a coroutine to its end in a thread of its own: Playwright's sync API keeps an event
    loop running in the test's thread, where asyncio.run refuses to start another."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def on_database(url: str, use: Callable[[Database], Awaitable[T]]) -> T:
    """`use(db)` on the live server's database, opened for it and closed after (run_apart)."""

    async def run() -> T:
        db = open_database(url)
        try:
            return await use(db)
        finally:
            await db.close()

    return run_apart(run())


@pytest.fixture
def demo(demo_url: str) -> Demo:
    return run_apart(_fill(demo_url))


@pytest.fixture
def live_server(demo_url: str, demo: Demo) -> Iterator[LiveServer]:
    settings = Settings(
        database_url=demo_url,
        public_url="http://127.0.0.1",
        twilio_auth_token=AUTH_TOKEN,
        run_scheduler=False,
        secret_key="a browser test's secret key, 32 characters or more",
    )
    with LiveServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def browser(sqlite_template: Path) -> Iterator[Any]:
    """Chromium, once per module of browser tests. Playwright's sync API keeps an event loop
    running in this thread until it stops, so it must stop before the tests of other modules
    (which run loops of their own here); and the SQLite template is made (with asyncio.run)
    before it starts."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


class Screens:
    """Screenshots named in the order they are taken, in the test's own folder."""

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self.taken: list[Path] = []

    def __call__(self, page: Any, name: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path

    def on_phone(self, page: Any, name: str) -> Path:
        """A screenshot at a phone's width, the laptop's width restored after it."""
        page.set_viewport_size(PHONE)
        try:
            return self(page, name)
        finally:
            page.set_viewport_size(LAPTOP)


@pytest.fixture
def screens(request: pytest.FixtureRequest) -> Screens:
    return Screens(ARTIFACTS / request.node.name.replace("[", "-").rstrip("]"))


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A new browser tab (English browser, laptop-sized) on the live server."""
    context = browser.new_context(base_url=live_server.url, locale="en-GB", viewport=LAPTOP)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def submit_sign_in(page: Any, password: str = PASSWORD) -> None:
    """The sign-in form (already on the page) filled in for the owner and sent."""
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page: Any, start: str = "/admin/sign-in", lands: str = r"/admin/$") -> None:
    """The owner signs in through the form, going to `start` first (a page behind the sign-in
    sends there), and is on a page whose address matches `lands` after it."""
    page.goto(start)
    submit_sign_in(page)
    expect(page).to_have_url(re.compile(lands))
