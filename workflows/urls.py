from __future__ import annotations

from django.urls import path

from workflows import views

urlpatterns = [
    path("workflows/", views.workflow_list, name="workflow_list"),
    path("workflows/<slug:slug>/", views.workflow_detail, name="workflow_detail"),
]
