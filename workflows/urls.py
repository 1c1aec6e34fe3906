from __future__ import annotations

from django.urls import path

from workflows import editor_views, views

urlpatterns = [
    path("workflows/", views.workflow_list, name="workflow_list"),
    path("workflows/import", editor_views.workflow_import, name="workflow_import"),
    path("workflows/new", views.workflow_new, name="workflow_new"),
    path("workflows/<slug:slug>/duplicate", views.workflow_duplicate, name="workflow_duplicate"),
    path("workflows/<slug:slug>/delete", views.workflow_delete, name="workflow_delete"),
    path("workflows/<slug:slug>/", views.workflow_detail, name="workflow_detail"),
    path("workflows/<slug:slug>/export", editor_views.workflow_export, name="workflow_export"),
    path(
        "workflows/<slug:slug>/settings", editor_views.workflow_settings, name="workflow_settings"
    ),
    path("workflows/<slug:slug>/steps/order", editor_views.steps_order, name="steps_order"),
    path("workflows/<slug:slug>/steps/new", editor_views.step_form, name="step_new"),
    path("workflows/<slug:slug>/steps/add", editor_views.step_save, name="step_add"),
    path("workflows/<slug:slug>/steps/<slug:key>/", editor_views.step_card, name="step_card"),
    path("workflows/<slug:slug>/steps/<slug:key>/edit", editor_views.step_form, name="step_edit"),
    path("workflows/<slug:slug>/steps/<slug:key>/save", editor_views.step_save, name="step_save"),
    path("workflows/<slug:slug>/steps/<slug:key>/move", editor_views.step_move, name="step_move"),
    path(
        "workflows/<slug:slug>/steps/<slug:key>/delete",
        editor_views.step_delete,
        name="step_delete",
    ),
]
