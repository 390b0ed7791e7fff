"""Browser tests of the pages: ERI served by uvicorn on a free port, one Chromium per session.

- ``web``: the API and the production worker (session scope, on the session's database, key
  store and Temporal dev server), served over real HTTP so a real browser can use it; its
  ``team`` holds the Guatemalan and Honduran teams (users with passwords, and bearer headers).
- ``browser``: Debian's Chromium (/usr/bin/chromium) driven by Playwright, headless, launched
  once per session; each test opens its own contexts (cookies are per context).
Nothing is downloaded: never ``playwright install``. ``make test`` installs the chromium package
with apt-get when /usr/bin/chromium is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from temporalio.testing import WorkflowEnvironment

from eri.runtime import Runtime
from tests.web.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    EXTRA_SETTINGS,
    WebApp,
    serve_web,
)

HAVE_CHROMIUM = Path(CHROMIUM).exists()


@pytest.fixture(scope="session")
async def web(
    temporal_env: WorkflowEnvironment,
    runtime: Runtime,
    session_tmp: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WebApp]:
    tmp = tmp_path_factory.mktemp("web")
    async with serve_web(temporal_env, runtime, session_tmp, tmp, **EXTRA_SETTINGS) as w:
        yield w


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)",
            pytrace=False,
        )
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()
