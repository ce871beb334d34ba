from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("members", "0003_memberlist_public"),
    ]

    operations = [
        migrations.AlterField(
            model_name="member",
            name="status",
            field=models.CharField(choices=[("active", "Active"), ("unsubscribed", "Unsubscribed"), ("bounced", "Bounced"), ("complained", "Complained"), ("blocked", "Blocked"), ("pending", "Awaiting confirmation")], default="active", max_length=16, verbose_name="status"),
        ),
        migrations.AddField(
            model_name="suppression",
            name="delivery_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
