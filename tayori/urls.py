"""Top-level routes: the UI shell, each app's pages, the REST API and static files."""

from django.urls import include, path

from tayori.web import password, views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("login/2fa/", views.login_2fa_view, name="login-2fa"),
    path("logout/", views.logout_view, name="logout"),
    path("language/", views.set_language, name="set-language"),
    path("workspace/switch/", views.switch_workspace, name="switch-workspace"),
    path("workspace/none/", views.no_workspace, name="workspace-none"),
    path("account/two-factor/", views.two_factor, name="two-factor"),
    path("account/password/", password.password_change, name="password-change"),
    path("healthz", views.health, name="health"),
    path("members/", include("tayori.members.urls")),
    path("workspace/", include("tayori.accounts.urls")),
    path("mail/", include("tayori.delivery.urls")),
    path("content/", include("tayori.content.views")),
    path("campaigns/", include("tayori.campaigns.views")),
    path("api/", include("tayori.api.urls")),
    path("t/", include("tayori.tracking.views")),
    path("t/", include("tayori.incidents.history")),
    path("t/", include("tayori.inbound.join")),
    path("notices/", include("tayori.incidents.views")),
    path("analytics/", include("tayori.tracking.pages")),
    path("mail/tracking/", include("tayori.tracking.setup")),
    path("mail/webhooks/", include("tayori.webhooks.views")),
    path("mail/inbound/", include("tayori.inbound.views")),
    path("inbound/", include("tayori.inbound.feeds")),
]
