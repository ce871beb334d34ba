"""Tracking settings pages (being built)."""

app_name = "tracking_setup"
urlpatterns: list = []
