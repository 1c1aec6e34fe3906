from __future__ import annotations

from django.urls import path

from runs.hooks import views

app_name = "hooks"
urlpatterns = [
    path("hooks/<str:token>", views.receive, name="receive"),
    path("workflows/<slug:slug>/webhooks", views.workflow_webhooks, name="list"),
]
