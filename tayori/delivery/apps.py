from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "tayori.delivery"
    label = "delivery"
    verbose_name = "Delivery"
