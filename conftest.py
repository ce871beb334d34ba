"""Shared test fixtures: two workspaces, an owner, a teammate and an outsider.

Tests run on SQLite by default and on PostgreSQL when TAYORI_DATABASE_URL points at one
(`make test` does both when TAYORI_TEST_POSTGRES_URL is set).
"""

import os

os.environ.setdefault("TAYORI_HUEY_IMMEDIATE", "true")
os.environ.setdefault("TAYORI_VAR_DIR", os.path.join(os.path.dirname(__file__), "var", "test"))

import pytest  # noqa: E402

PASSWORD = "correct horse battery"


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
