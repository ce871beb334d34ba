from django.apps import AppConfig


class InboundConfig(AppConfig):
    name = "tayori.inbound"
    label = "inbound"
    verbose_name = "Inbound mail"

    def ready(self):
        # Inbound sits above delivery: the engine keeps lists of listeners and checks, and this
        # app puts itself on them (SMTP replies classified as bounces; bounce and complaint
        # rates that pause a send).
        from tayori.delivery import scheduler, signals
        from tayori.inbound import history, rates, replies, signup
        from tayori.tracking import history as tracking_history

        if replies.delivery_changed not in signals.LISTENERS:
            signals.LISTENERS.append(replies.delivery_changed)
        if rates.check not in scheduler.PAUSE_CHECKS:
            scheduler.PAUSE_CHECKS.append(rates.check)
        scheduler.TASKS["signups"] = signup.tidy
        if history.events_of not in tracking_history.CHAPTERS:
            tracking_history.CHAPTERS.append(history.events_of)
