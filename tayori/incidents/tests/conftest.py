"""Fixtures for incident notices: the starter set in a workspace whose merchants hold the
services they use in the ``services`` attribute, and a request an operator would send."""

import datetime as dt
from types import SimpleNamespace

import pytest

from conftest import make_operator
from tayori.incidents.models import NoticeType
from tayori.incidents.starter import create_starter
from tayori.members.models import Member, Suppression

# Who uses what: chosen services payment_api and transfer reach a, b (two services) and e
# (unsubscribed, still told); f bounced and g is suppressed, both skipped with their reason;
# c and h use other services and d has no services at all.
MERCHANTS = [
    ("a@merchant.example.jp", ["payment_api"], "active"),
    ("b@merchant.example.jp", ["payment_api", "transfer"], "active"),
    ("c@merchant.example.jp", ["card"], "active"),
    ("d@merchant.example.jp", None, "active"),
    ("e@merchant.example.jp", ["transfer"], "unsubscribed"),
    ("f@merchant.example.jp", ["payment_api"], "bounced"),
    ("g@merchant.example.jp", ["transfer"], "active"),
    ("h@merchant.example.jp", ["konbini", "dashboard"], "active"),
]
AFFECTED = {"a@merchant.example.jp", "b@merchant.example.jp", "e@merchant.example.jp"}
CHOSEN = ["payment_api", "transfer"]


def request_by(operator=None, workspace=None, api_key=None):
    """What the domain functions read from a request: who acts, for the audit log."""
    return SimpleNamespace(user=operator, workspace=workspace, api_key=api_key,
                           META={"REMOTE_ADDR": "127.0.0.1"}, headers={})


@pytest.fixture
def starter(workspace, owner):
    create_starter(workspace, from_address="status@pay.example.jp", from_name="サンプル決済")
    return {t.name: t for t in NoticeType.objects.filter(workspace=workspace)}


@pytest.fixture
def merchants(workspace, starter):
    members = {}
    for email, services, status in MERCHANTS:
        members[email] = Member.objects.create(
            workspace=workspace, email=email, status=status,
            attributes={"services": services} if services is not None else {})
    Suppression.objects.create(workspace=workspace, value="g@merchant.example.jp",
                               reason="complaint")
    return members


@pytest.fixture
def approver(workspace):
    return make_operator(workspace, "approver@sample.jp", "Approver")


@pytest.fixture
def second_approver(workspace):
    return make_operator(workspace, "approver2@sample.jp", "Approver")


def outage_fields(**changes) -> dict:
    started = dt.datetime(2026, 11, 30, 3, 12)
    return {"services": CHOSEN, "started_at": started.isoformat(), "impact": "全面停止",
            **changes}
