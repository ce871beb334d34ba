"""Workspace administration pages. Each view module owns its routes; this file gathers them."""

from tayori.accounts.views import apikeys, audit, iprules, operators, roles, settings

app_name = "accounts"
urlpatterns = [
    *operators.urlpatterns,
    *roles.urlpatterns,
    *apikeys.urlpatterns,
    *iprules.urlpatterns,
    *audit.urlpatterns,
    *settings.urlpatterns,
]
