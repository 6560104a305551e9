from django.urls import path

from webapp.classifier import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/predict", views.api_predict, name="api-predict"),
    path("api/explain", views.api_explain, name="api-explain"),
]
