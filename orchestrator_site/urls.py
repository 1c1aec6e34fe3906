from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from orchestrator_site import metrics_view, views
from orchestrator_site.accounts import views as account_views
from orchestrator_site.accounts.forms import ThrottledAuthenticationForm

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_view.metrics, name="metrics"),
    path("favicon.ico", views.favicon, name="favicon"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", account_views.audit_log, name="audit"),
    path("audit/export.csv", account_views.audit_export, name="audit_export"),
    path("admin/", admin.site.urls),
    path("", include("workflows.urls")),
    path("", include("runs.urls")),
    path("", include("runs.schedules.urls")),
    path("", include("runs.hooks.urls")),
    path("", include("runs.notify.urls")),
    path("", include("orchestrator_site.api.urls")),
]
