"""Property-based run of the whole API from its own OpenAPI spec: no input makes it crash.

Schemathesis generates requests for every operation (valid and edge-case bodies, query strings
and path ids) and sends them through the WSGI app with an Owner key; any 5xx fails the test.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tayori.accounts.models import ApiKey
from tayori.accounts.permissions import ALL
from tayori.members.models import Attribute, Member, MemberList, Segment

# Bounded so the whole run stays well under a minute on a shared machine.
EXAMPLES_PER_OPERATION = 6


from tayori.wsgi import application  # noqa: E402

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """The raw WSGI app closes "old" database connections around each request, which would end
    the test's transaction on PostgreSQL; Django's test client switches this off the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def owner_key(workspace, settings):
    # Every generated request should reach the route, not the rate limiter.
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    for key, label, kind, extra in (
        ("name", "氏名", "text", {"pii": True}),
        ("age", "年齢", "number", {}),
        ("birthday", "誕生日", "date", {}),
        ("joined", "入会日時", "datetime", {}),
        ("newsletter", "メルマガ", "boolean", {}),
        ("plan", "プラン", "choice", {"choices": ["free", "gold"]}),
        ("tags", "タグ", "multi_choice", {"choices": ["a", "b"]}),
    ):
        Attribute.objects.create(workspace=workspace, key=key, label=label, type=kind, **extra)
    member = Member.objects.create(workspace=workspace, email="taro@example.jp",
                                   attributes={"plan": "gold"})
    MemberList.objects.create(workspace=workspace, name="VIP").members.add(member)
    Segment.objects.create(workspace=workspace, name="Gold", definition={
        "op": "and", "conditions": [{"field": "plan", "operator": "equals", "value": "gold"}]})
    _key, raw = ApiKey.issue(workspace, "schemathesis", ALL)
    return raw


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_makes_the_api_fail(case, owner_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {owner_key}"},
                           checks=[not_a_server_error])
