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
def create_owner(email: str, password: str, workspace_name: str) -> Operator:
    operator = Operator.objects.create_user(username=email, email=email, password=password)
    workspace = create_workspace(workspace_name)
    Membership.objects.create(workspace=workspace, operator=operator,
                              role=Role.objects.get(workspace=workspace, name="Owner"))
    return operator
