from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tayori.tracking"
    label = "tracking"
    verbose_name = "Tracking"
