from django.urls import path

from tayori.api.v1 import api

urlpatterns = [path("", api.urls)]
