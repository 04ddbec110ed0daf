from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CasesConfig(AppConfig):
    name = "cordon.cases"
    label = "cases"
    verbose_name = "Cases"
    nav = [("cases:list", _("Cases"), "view_cases"), ("cases:board", _("Investigations"), "view_cases")]
