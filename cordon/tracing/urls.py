from django.urls import path

from cordon.tracing import views

app_name = "tracing"

urlpatterns = [
    path("", views.contacts, name="contacts"),
    path("contacts/<int:contact_id>/", views.contact, name="contact"),
    path("contacts/<int:contact_id>/status", views.advance, name="advance"),
    path("contacts/<int:contact_id>/tests", views.contact_test, name="contact-test"),
    path("cases/<int:case_id>/contacts", views.add_contact, name="add-contact"),
    path("cases/<int:case_id>/colocation", views.colocation, name="colocation"),
    path("cases/<int:case_id>/colocation/status", views.colocation_status, name="colocation-status"),
    path("exposures/<int:exposure_id>/manifest", views.manifest, name="manifest"),
    path("clusters/", views.clusters, name="clusters"),
    path("clusters/rebuild", views.rebuild, name="rebuild"),
    path("clusters/<int:cluster_id>/", views.cluster, name="cluster"),
]
