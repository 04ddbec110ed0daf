from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TracingConfig(AppConfig):
    name = "cordon.tracing"
    label = "tracing"
    verbose_name = "Tracing"
    nav = [("tracing:contacts", _("Contacts"), "view_cases")]
