"""Shared test fixtures: two workspaces, an owner, a teammate and an outsider.

Tests run on SQLite by default and on PostgreSQL when TAYORI_DATABASE_URL points at one
(`make test` does both when TAYORI_TEST_POSTGRES_URL is set).
"""

import os

os.environ.setdefault("TAYORI_HUEY_IMMEDIATE", "true")
os.environ.setdefault("TAYORI_VAR_DIR", os.path.join(os.path.dirname(__file__), "var", "test"))

import shutil  # noqa: E402

import pytest  # noqa: E402

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _huey_immediate():
    # pytest-django loads the settings before this file runs, so the environment default above
    # arrives too late for huey's settings; switch the instance itself.
    from huey.contrib.djhuey import HUEY

    HUEY.immediate = True


@pytest.fixture(autouse=True)
def _tracking_by_hand(settings):
    # Tests store tracking hits themselves (ingest.flush()), inside their own transaction.
    from tayori.tracking import ingest

    settings.TRACKING_WRITER = False
    yield
    ingest._pending.clear()


@pytest.fixture(autouse=True)
def _forget_tracked_links():
    # Tracking keeps each send's links and each delivery's send per process, keyed by ids the
    # next test's rows reuse (SQLite hands out a rolled-back id again).
    from tayori.tracking import fast

    yield
    fast._links.clear()
    fast._sources.clear()


@pytest.fixture(autouse=True)
def _forget_inbound_caches():
    # tayori mx keeps each workspace's bounce rules and the accepted domains a few seconds.
    from tayori.inbound import consequences, receiving

    consequences.forget_rules()
    receiving.forget_domains()
    yield
    consequences.forget_rules()
    receiving.forget_domains()


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    # Job files (uploads, error reports, exports) are named by job id, which restarts in every
    # test database: give each test its own folder so parallel runs cannot overwrite each other.
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Argon2 is the production hasher; tests only need a correct one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def workspace(db):
    from tayori.accounts.bootstrap import create_workspace

    return create_workspace("株式会社サンプル", slug="sample")


@pytest.fixture
def other_workspace(db):
    from tayori.accounts.bootstrap import create_workspace

    return create_workspace("Other Brand", slug="other")


def make_operator(workspace, email, role_name):
    from tayori.accounts.models import Membership, Operator, Role

    operator = Operator.objects.create_user(username=email, email=email, password=PASSWORD)
    if workspace is not None:
        Membership.objects.create(workspace=workspace, operator=operator,
                                  role=Role.objects.get(workspace=workspace, name=role_name))
    return operator


@pytest.fixture
def owner(workspace):
    return make_operator(workspace, "owner@sample.jp", "Owner")


@pytest.fixture
def teammate(workspace):
    """An Analyst in the same workspace: may view and export, may not see PII or edit."""
    return make_operator(workspace, "analyst@sample.jp", "Analyst")


@pytest.fixture
def outsider(other_workspace):
    return make_operator(other_workspace, "owner@other.example", "Owner")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def analyst_client(client, teammate):
    client.force_login(teammate)
    return client


# Browser tests: Playwright driving Debian's Chromium against a live Tayori server. Without
# /usr/bin/chromium they skip on a developer machine and fail in CI (CI=true).
CHROMIUM = os.environ.get("TAYORI_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, and asyncio tests (the delivery engine's) cannot start their own loop until it stops.
@pytest.fixture(scope="module")
def chromium():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no browser at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; the Django ORM calls the tests
    # make between browser steps are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    context = chromium.new_context(base_url=live_server.url, locale="ja-JP",
                                   timezone_id="Asia/Tokyo", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()
