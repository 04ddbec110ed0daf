from django.urls import path

from cordon.command import views

app_name = "command"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("panel", views.dashboard_panel, name="dashboard-panel"),
    path("tasks/", views.tasks, name="tasks"),
    path("tasks/new", views.task_dispatch, name="task-dispatch"),
    path("tasks/<int:task_id>/", views.task_detail, name="task"),
    path("tasks/<int:task_id>/action", views.task_action, name="task-action"),
    path("tasks/<int:task_id>/evidence", views.task_evidence, name="task-evidence"),
    path("groups/", views.groups, name="groups"),
    path("groups/new", views.group_create, name="group-create"),
    path("groups/<int:group_id>/members", views.group_members, name="group-members"),
    path("timeliness/", views.timeliness, name="timeliness"),
    path("inspections/", views.inspections, name="inspections"),
    path("inspections/new", views.inspection_create, name="inspection-create"),
    path("inspections/<int:inspection_id>/status", views.inspection_status, name="inspection-status"),
    path("accountability/new", views.accountability_create, name="accountability-create"),
    path("bulletins/", views.bulletins, name="bulletins"),
    path("bulletins/new", views.bulletin_generate, name="bulletin-generate"),
    path("bulletins/<int:bulletin_id>/", views.bulletin_detail, name="bulletin"),
    path("bulletins/<int:bulletin_id>/action", views.bulletin_action, name="bulletin-action"),
    path("tipoffs/", views.tipoffs, name="tipoffs"),
    path("tipoffs/<int:tipoff_id>/triage", views.tipoff_triage, name="tipoff-triage"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/read", views.notifications_read, name="notifications-read"),
    # Public pages: no login, no personal data.
    path("public/", views.public_index, name="public"),
    path("public/bulletins/<int:bulletin_id>/", views.public_bulletin, name="public-bulletin"),
    path("public/tipoff/", views.public_tipoff, name="public-tipoff"),
    path("public/tipoff/status", views.public_tipoff_status, name="public-tipoff-status"),
]
