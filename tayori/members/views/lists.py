"""Pages: lists (being built)."""

urlpatterns = []
