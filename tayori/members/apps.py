from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "tayori.members"
    label = "members"
    verbose_name = "Members"
