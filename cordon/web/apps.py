from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "cordon.web"
    label = "web"
    verbose_name = "Web UI"
