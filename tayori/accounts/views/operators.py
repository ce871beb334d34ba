"""Pages: operators (being built)."""

urlpatterns = []
