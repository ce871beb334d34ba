"""Built-in roles of existing workspaces get the delivery permissions their kind now holds."""

from django.db import migrations

NEW = {
    "Owner": {"deliveries.view", "messages.send"},
    "Admin": {"deliveries.view", "messages.send"},
    "Editor": {"deliveries.view"},
    "Approver": {"deliveries.view"},
    "Analyst": {"deliveries.view"},
    "Viewer": {"deliveries.view"},
}


def grant(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    for role in Role.objects.filter(builtin=True, name__in=NEW):
        role.permissions = sorted(set(role.permissions) | NEW[role.name])
        role.save(update_fields=["permissions"])


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0001_initial"),
        ("accounts", "0002_operator_must_change_password"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
