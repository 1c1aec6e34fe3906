from __future__ import annotations

from django.urls import path

from runs.notify import views

app_name = "notify"
urlpatterns = [
    path(
        "workflows/<slug:slug>/notifications",
        views.workflow_notifications,
        name="targets",
    ),
]
