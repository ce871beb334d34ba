"""Built-in roles get the notice and webhook permissions their kind now holds; keys and roles
that could send messages keep sending to external addresses, now a permission of its own."""

from django.db import migrations

NEW = {
    "Owner": {"messages.send_external", "notices.send", "notices.manage", "webhooks.manage"},
    "Admin": {"messages.send_external", "notices.send", "notices.manage", "webhooks.manage"},
    "Editor": {"notices.manage"},
    "Approver": {"notices.send"},
}


def grant(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    for role in Role.objects.filter(builtin=True, name__in=NEW):
        role.permissions = sorted(set(role.permissions) | NEW[role.name])
        role.save(update_fields=["permissions"])
    for model in (Role, apps.get_model("accounts", "ApiKey")):
        for holder in model.objects.all():
            if "messages.send" in holder.permissions:
                holder.permissions = sorted(set(holder.permissions) | {"messages.send_external"})
                holder.save(update_fields=["permissions"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_operator_must_change_password")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
