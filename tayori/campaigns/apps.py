from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "tayori.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from tayori.campaigns import steps
        from tayori.delivery import scheduler

        scheduler.TASKS["steps"] = steps.fire
