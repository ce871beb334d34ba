"""Template context: the current workspace, membership and what the operator may do."""

from tayori.accounts.models import Membership


class _Perms:
    def __init__(self, membership):
        self.membership = membership

    def __getitem__(self, app):
        return _AppPerms(self.membership, app)


class _AppPerms:
    def __init__(self, membership, app):
        self.membership, self.app = membership, app

    def __getitem__(self, action):
        return self.membership is not None and self.membership.has(f"{self.app}.{action}")


def workspace(request):
    membership = getattr(request, "membership", None)
    others = []
    if membership is not None:
        others = (Membership.objects.filter(operator=request.user)
                  .select_related("workspace").order_by("workspace__name"))
    return {
        "workspace": getattr(request, "workspace", None),
        "membership": membership,
        "can": _Perms(membership),
        "my_workspaces": others,
    }
