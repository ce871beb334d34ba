"""Pages: apikeys (being built)."""

urlpatterns = []
