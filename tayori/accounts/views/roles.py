"""Pages: roles (being built)."""

urlpatterns = []
