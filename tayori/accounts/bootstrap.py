"""Creating the first workspace and its owner (used by `tayori serve` and tests)."""

from django.db import transaction
from django.utils.text import slugify

from tayori.accounts.models import Membership, Operator, Role, Workspace


def has_operators() -> bool:
    return Operator.objects.exists()


@transaction.atomic
def create_workspace(name: str, slug: str | None = None) -> Workspace:
    base = slug or slugify(name) or "workspace"
    candidate, n = base, 1
    while Workspace.objects.filter(slug=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return Workspace.objects.create(name=name, slug=candidate)


@transaction.atomic
def create_owner(email: str, password: str, workspace_name: str,
                 must_change_password: bool = False) -> Operator:
    """The first operator, Owner of a new workspace.

    ``must_change_password`` is for a generated password that was printed to a console: the owner
    then replaces it at the first sign-in.
    """
    operator = Operator.objects.create_user(username=email, email=email, password=password,
                                            must_change_password=must_change_password)
    workspace = create_workspace(workspace_name)
    Membership.objects.create(workspace=workspace, operator=operator,
                              role=Role.objects.get(workspace=workspace, name="Owner"))
    return operator
