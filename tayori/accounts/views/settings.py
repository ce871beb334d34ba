"""Pages: settings (being built)."""

urlpatterns = []
