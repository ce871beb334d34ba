from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tayori.tracking"
    label = "tracking"
    verbose_name = "Tracking"

    def ready(self):
        # Segments may test responses ("did not open mail X"); members cannot import tracking,
        # so tracking adds its field kind to the condition language.
        from tayori.members.segments import register
        from tayori.tracking.responses import ResponseKind

        register(ResponseKind())
