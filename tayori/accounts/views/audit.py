"""Pages: audit (being built)."""

urlpatterns = []
