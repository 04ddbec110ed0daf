from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from cordon.api.main import api
from cordon.modules import each
from cordon.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="web/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("people/", views.people_list, name="people"),
    path("people/export.xlsx", views.people_export, name="people-export"),
    path("people/duplicates/", views.duplicates, name="duplicates"),
    path("people/duplicates/<int:flag_id>/resolve", views.duplicate_resolve, name="duplicate-resolve"),
    path("people/import/", views.people_import, name="people-import"),
    path("people/import/<str:result_id>/", views.people_import_status, name="people-import-status"),
    path("people/import/<str:result_id>/errors.csv", views.people_import_errors, name="people-import-errors"),
    path("people/<int:person_id>/", views.person_detail, name="person"),
    path("people/<int:person_id>/reveal", views.person_reveal, name="person-reveal"),
    path("regions/", views.regions, name="regions"),
    path("audit/", views.audit_log, name="audit"),
    path("public/", RedirectView.as_view(url="/command/public/", permanent=False), name="public"),
    path("regions/<str:code>/children", views.region_children, name="region-children"),
    path("api/v1/", api.urls),
]

for _name, _mod in each("urls"):
    if _name != "people":
        urlpatterns.append(path(f"{_name}/", include(_mod)))
