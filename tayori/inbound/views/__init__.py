"""Inbound pages under /mail/inbound/. Each view module owns its routes; this file only
gathers them."""

from tayori.inbound.views import bounces, history, setup, signups

app_name = "inbound"
urlpatterns = [
    *bounces.urlpatterns,
    *history.urlpatterns,
    *setup.urlpatterns,
    *signups.urlpatterns,
]
