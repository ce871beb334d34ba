"""Pages: members (being built)."""

urlpatterns = []
