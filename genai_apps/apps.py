from django.apps import AppConfig


class GenAIAppsConfig(AppConfig):
    name = "genai_apps"
    verbose_name = "GenAI applications"
