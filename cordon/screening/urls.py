from django.urls import path

from cordon.screening import views

app_name = "screening"

urlpatterns = [
    path("", views.campaigns, name="campaigns"),
    path("campaigns/<int:campaign_id>/", views.campaign, name="campaign"),
    path("campaigns/<int:campaign_id>/status", views.campaign_status, name="campaign-status"),
    path("campaigns/<int:campaign_id>/coverage/", views.coverage, name="coverage"),
    path("campaigns/<int:campaign_id>/untested.xlsx", views.untested_export, name="untested-export"),
    path("campaigns/<int:campaign_id>/retests/", views.retests, name="retests"),
    path("retests/<int:retest_id>/action", views.retest_action, name="retest-action"),
    path("campaigns/<int:campaign_id>/coverage/refresh", views.coverage_refresh, name="coverage-refresh"),
    path("sites/", views.sites, name="sites"),
    path("sites/<int:site_id>/", views.site, name="site"),
    path("labs/<str:code>/", views.lab, name="lab"),
    path("tubes/<str:barcode>/", views.tube, name="tube"),
    path("results/upload/", views.upload, name="upload"),
    path("results/errors/<str:token>.csv", views.error_report, name="error-report"),
]
