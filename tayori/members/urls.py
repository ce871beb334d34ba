"""Member pages. Each view module owns its routes; this file only gathers them."""

from tayori.members.views import attributes, jobs, lists, members, segments, suppressions

app_name = "members"
urlpatterns = [
    *members.urlpatterns,
    *attributes.urlpatterns,
    *lists.urlpatterns,
    *segments.urlpatterns,
    *jobs.urlpatterns,
    *suppressions.urlpatterns,
]
