"""Pages: jobs (being built)."""

urlpatterns = []
