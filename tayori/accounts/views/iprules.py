"""Pages: iprules (being built)."""

urlpatterns = []
