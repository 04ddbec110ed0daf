from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IsolationConfig(AppConfig):
    name = "cordon.isolation"
    label = "isolation"
    verbose_name = "Transfer and isolation"
    nav = [("isolation:sites", _("Isolation"), "view_isolation")]
