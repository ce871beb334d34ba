"""Pages: attributes (being built)."""

urlpatterns = []
