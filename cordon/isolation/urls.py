from django.urls import path

from cordon.isolation import views

app_name = "isolation"

urlpatterns = [
    path("", views.sites, name="sites"),
    path("sites/<int:site_id>/", views.site_board, name="site"),
    path("sites/<int:site_id>/assign", views.site_assign, name="site-assign"),
    path("sites/<int:site_id>/status", views.site_status, name="site-status"),
    path("sites/<int:site_id>/sample", views.site_sample, name="site-sample"),
    path("placements/<int:pk>/", views.placement_detail, name="placement"),
    path("placements/<int:pk>/test", views.placement_test, name="placement-test"),
    path("placements/<int:pk>/tests/<int:test_id>/missed", views.placement_missed, name="placement-missed"),
    path("placements/<int:pk>/release", views.placement_release, name="placement-release"),
    path("releases/", views.releases, name="releases"),
    path("transfers/", views.transfers, name="transfers"),
    path("transfers/request", views.transfers_request, name="transfers-request"),
    path("trips/plan", views.trips_plan, name="trips-plan"),
    path("trips/<int:pk>/status", views.trip_advance, name="trip-status"),
    path("capacity/", views.capacity, name="capacity"),
]
