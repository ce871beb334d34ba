from django.apps import AppConfig


class ContentConfig(AppConfig):
    name = "tayori.content"
    label = "content"
    verbose_name = "Content"
