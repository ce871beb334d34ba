from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "tayori.web"
    label = "web"
