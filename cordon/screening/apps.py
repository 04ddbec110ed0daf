from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ScreeningConfig(AppConfig):
    name = "cordon.screening"
    label = "screening"
    verbose_name = "Mass screening"
    nav = [("screening:campaigns", _("Screening"), "view_screening")]
