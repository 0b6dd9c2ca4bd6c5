from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from gateway.keys import invalidate_keys
        from genai_apps.models import GenAIApplication, KeyMapping
        from genai_apps.signals import mapping_changed
        from workspace.models import APIKey, AppProxy, Provider

        # Any change to what a key resolves to replaces the key cache version.
        for model in (APIKey, KeyMapping, Provider, AppProxy, GenAIApplication):
            post_save.connect(
                invalidate_keys,
                sender=model,
                dispatch_uid=f"gateway-{model.__name__}-save",
            )
            post_delete.connect(
                invalidate_keys,
                sender=model,
                dispatch_uid=f"gateway-{model.__name__}-delete",
            )
        mapping_changed.connect(invalidate_keys, dispatch_uid="gateway-mapping-changed")
