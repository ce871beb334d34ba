"""Fixtures for the workspace administration pages."""

import pytest

from conftest import make_operator
from tayori.accounts.models import Membership, Role


@pytest.fixture
def english(owner):
    """Show the owner's pages in English so that tests can read the messages."""
    owner.language = "en"
    owner.save(update_fields=["language"])
    return owner


@pytest.fixture
def admin_op(workspace):
    """An Admin: every permission, but not an Owner."""
    operator = make_operator(workspace, "admin@sample.jp", "Admin")
    operator.language = "en"
    operator.save(update_fields=["language"])
    return operator


def seat(workspace, operator) -> Membership:
    return Membership.objects.select_related("role").get(workspace=workspace, operator=operator)


def role(workspace, name) -> Role:
    return Role.objects.get(workspace=workspace, name=name)


def page_text(response) -> str:
    return response.content.decode()
