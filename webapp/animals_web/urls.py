from django.contrib import admin
from django.urls import path

from webapp.classifier import views
from webapp.corrections import views as corrections

urlpatterns = [
    path("", views.index, name="index"),
    path("api/predict", views.api_predict, name="api-predict"),
    path("api/explain", views.api_explain, name="api-explain"),
    path("api/corrections", corrections.api_correction, name="api-corrections"),
    path("corrections", corrections.page_correction, name="page-correction"),
    path("metrics", corrections.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]
