"""Pages: suppressions (being built)."""

urlpatterns = []
