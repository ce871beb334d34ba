"""API test fixtures: keys with chosen permissions and a client that sends them."""

import pytest
from django.core.cache import cache

from tayori.accounts.models import ApiKey
from tayori.accounts.permissions import ALL, BUILTIN_ROLES
from tayori.api.tests.helpers import Api


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def issue_key(workspace):
    def issue(perms=ALL, cidrs=(), ws=None):
        key, raw = ApiKey.issue(ws or workspace, "integration", perms, allowed_cidrs=cidrs)
        return key, raw

    return issue


@pytest.fixture
def api(client, issue_key):
    """An Owner-like key: every permission."""
    return Api(client, issue_key()[1])


@pytest.fixture
def analyst_api(client, issue_key):
    """The Analyst's permissions: view and export, no personal data, no edits."""
    return Api(client, issue_key(BUILTIN_ROLES["Analyst"])[1])


@pytest.fixture
def editor_api(client, issue_key):
    return Api(client, issue_key(BUILTIN_ROLES["Editor"])[1])


@pytest.fixture
def masked_editor_api(client, issue_key):
    """May edit members but sees personal data masked."""
    return Api(client, issue_key(BUILTIN_ROLES["Editor"] - {"members.view_pii"})[1])


@pytest.fixture
def outsider_api(client, other_workspace):
    key, raw = ApiKey.issue(other_workspace, "other", ALL)
    return Api(client, raw)
