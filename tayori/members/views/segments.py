"""Pages: segments (being built)."""

urlpatterns = []
