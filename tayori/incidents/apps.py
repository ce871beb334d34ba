from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "tayori.incidents"
    label = "incidents"
    verbose_name = "Incident notices"
