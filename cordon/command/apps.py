from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommandConfig(AppConfig):
    name = "cordon.command"
    label = "command"
    verbose_name = "Command centre"
    nav = [("command:dashboard", _("Command"), "view_command"), ("command:tasks", _("Tasks"), "view_command")]

    def ready(self) -> None:
        from cordon.command import handlers

        handlers.register()
