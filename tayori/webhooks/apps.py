from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "tayori.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self):
        # Webhooks sit above delivery and tracking: those apps only keep lists of listeners,
        # and this app puts itself on them.
        from django.db.models.signals import post_delete, post_save

        from tayori.delivery import scheduler, signals
        from tayori.tracking import ingest, optout
        from tayori.webhooks import dispatch, listeners, subscriptions
        from tayori.webhooks.models import Endpoint

        for registry, listener in ((signals.LISTENERS, listeners.delivery_changed),
                                   (ingest.EVENT_LISTENERS, listeners.responded),
                                   (optout.LISTENERS, listeners.unsubscribed)):
            if listener not in registry:
                registry.append(listener)
        scheduler.TASKS["webhooks"] = dispatch.tick
        for signal in (post_save, post_delete):
            signal.connect(subscriptions.changed, sender=Endpoint,
                           dispatch_uid=f"webhooks-subscriptions-{signal is post_save}")
