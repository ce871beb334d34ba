from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tayori.accounts"
    label = "accounts"
    verbose_name = "Accounts"
