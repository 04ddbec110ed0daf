from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "cordon.core"
    label = "core"
    verbose_name = "Cordon core"

    def ready(self) -> None:
        # A bad policy file must stop the deployment at start-up, naming the key, not surface later as a
        # wrong quarantine date.
        from cordon.core.policy import validate_all_profiles

        validate_all_profiles()
