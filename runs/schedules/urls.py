from __future__ import annotations

from django.urls import path

from runs.schedules import views

app_name = "schedules"
urlpatterns = [
    path("workflows/<slug:slug>/schedules/", views.schedule_history, name="history"),
    path("workflows/<slug:slug>/schedules/add", views.schedule_save, name="add"),
    path("workflows/<slug:slug>/schedules/<slug:name>/save", views.schedule_save, name="save"),
    path(
        "workflows/<slug:slug>/schedules/<slug:name>/delete", views.schedule_delete, name="delete"
    ),
    path(
        "workflows/<slug:slug>/schedules/<slug:name>/enable", views.schedule_enable, name="enable"
    ),
]
