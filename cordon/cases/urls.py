from django.urls import path

from cordon.cases import views

app_name = "cases"

urlpatterns = [
    path("", views.case_list, name="list"),
    path("board/", views.board, name="board"),
    path("new/", views.report, name="report"),
    path("<int:case_id>/", views.detail, name="detail"),
    path("<int:case_id>/reclassify", views.reclassify, name="reclassify"),
    path("<int:case_id>/tests", views.add_test, name="test"),
    path("<int:case_id>/discharge", views.discharge, name="discharge"),
    path("<int:case_id>/status", views.set_status, name="status"),
    path("<int:case_id>/investigation", views.investigation, name="investigation"),
    path("<int:case_id>/exposures", views.add_exposure, name="exposure"),
]
