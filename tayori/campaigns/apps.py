from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "tayori.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from tayori.campaigns import notices, steps
        from tayori.delivery import scheduler
        from tayori.tracking import ingest

        scheduler.TASKS["steps"] = steps.fire
        if notices.clicked not in ingest.LISTENERS:
            ingest.LISTENERS.append(notices.clicked)
