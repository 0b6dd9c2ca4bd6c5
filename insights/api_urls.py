app_name = "insights_api"

urlpatterns = []
