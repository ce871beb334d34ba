"""Delivery pages. Each view module owns its routes; this file only gathers them."""

from tayori.delivery.views import log, outbox, sends, setup

app_name = "delivery"
urlpatterns = [*sends.urlpatterns, *log.urlpatterns, *outbox.urlpatterns, *setup.urlpatterns]
