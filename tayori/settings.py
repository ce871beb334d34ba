"""Django settings for Tayori, read from TAYORI_* environment variables.

Embedded defaults (SQLite under ./var/, debug off, JST) let `make serve` run with nothing set;
production (TAYORI_ENV=production) refuses to start with the default secret key.
"""

import os
import re
from pathlib import Path

from tayori.lib.config import database_from_url, env_bool, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(env_str("TAYORI_VAR_DIR", str(BASE_DIR.parent / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEFAULT_SECRET = "tayori-insecure-default-secret-change-me"
ENVIRONMENT = env_str("TAYORI_ENV", "development")
SECRET_KEY = env_str("TAYORI_SECRET_KEY", DEFAULT_SECRET)
if ENVIRONMENT == "production" and SECRET_KEY == DEFAULT_SECRET:
    raise RuntimeError("TAYORI_SECRET_KEY must be set when TAYORI_ENV=production")
# Seals secrets at rest (DKIM keys, relay passwords); comma-separated keys rotate. Empty: derived
# from SECRET_KEY (see tayori.lib.crypto).
ENCRYPTION_KEY = env_str("TAYORI_ENCRYPTION_KEY", "")
DEBUG = env_bool("TAYORI_DEBUG", False)
ALLOWED_HOSTS = env_list("TAYORI_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
# Client addresses in X-Forwarded-For are believed only when the peer is one of these proxies.
TRUSTED_PROXIES = env_list("TAYORI_TRUSTED_PROXIES", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "huey.contrib.djhuey",
    "ninja",  # serves the API docs' Swagger UI from local static files, not a CDN
    "tayori.accounts",
    "tayori.members",
    "tayori.delivery",
    "tayori.content",
    "tayori.campaigns",
    "tayori.tracking",
    "tayori.incidents",
    "tayori.webhooks",
    "tayori.inbound",
    "tayori.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tayori.accounts.middleware.WorkspaceMiddleware",
    "tayori.accounts.middleware.LanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tayori.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tayori.accounts.context.workspace",
            ],
        },
    }
]
ASGI_APPLICATION = "tayori.asgi.application"
WSGI_APPLICATION = "tayori.wsgi.application"

DATABASES = {
    "default": database_from_url(
        env_str("TAYORI_DATABASE_URL", f"sqlite:///{VAR_DIR / 'tayori.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.Operator"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
SESSION_COOKIE_AGE = int(env_str("TAYORI_SESSION_SECONDS", str(8 * 3600)))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("TAYORI_SECURE_COOKIES", ENVIRONMENT == "production")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Failed logins before an operator is locked out, and for how long.
LOGIN_MAX_FAILURES = int(env_str("TAYORI_LOGIN_MAX_FAILURES", "5"))
LOGIN_LOCKOUT_SECONDS = int(env_str("TAYORI_LOGIN_LOCKOUT_SECONDS", "900"))

LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", "日本語"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env_str("TAYORI_TIME_ZONE", "Asia/Tokyo")

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024

# Background jobs: huey on a SQLite file by default; TAYORI_HUEY_IMMEDIATE runs jobs inline (tests).
# How long a worker may hold claimed rows before another may take them: a killed worker's rows
# return to the queue after this.
DELIVERY_LEASE_SECONDS = int(env_str("TAYORI_DELIVERY_LEASE_SECONDS", "300"))

HUEY = {
    "huey_class": "huey.SqliteHuey",
    "name": "tayori",
    "filename": str(VAR_DIR / "huey.sqlite3"),
    "immediate": env_bool("TAYORI_HUEY_IMMEDIATE", False),
    "consumer": {"workers": 2, "worker_type": "thread"},
}

# Inbound SMTP (tayori mx): where it listens, the domains it takes mail for besides the
# workspaces' bounce, sender and inbound domains, the largest message, optional STARTTLS, and how
# much of each report is kept as evidence.
MX_HOST = env_str("TAYORI_MX_HOST", "127.0.0.1")
MX_PORT = int(env_str("TAYORI_MX_PORT", "2525"))
MX_DOMAINS = env_list("TAYORI_MX_DOMAINS", [])
MX_MAX_SIZE = int(env_str("TAYORI_MX_MAX_SIZE", str(10 * 1024 * 1024)))
MX_HOSTNAME = env_str("TAYORI_MX_HOSTNAME", "localhost")  # named in the greeting
MX_TLS_CERT = env_str("TAYORI_MX_TLS_CERT", "")
MX_TLS_KEY = env_str("TAYORI_MX_TLS_KEY", "")
TAYORI_INBOUND_RAW_LIMIT = int(env_str("TAYORI_INBOUND_RAW_LIMIT", str(64 * 1024)))
# Amazon SNS feeds (tayori.inbound.providers.sns): the hosts a SigningCertURL or SubscribeURL
# may name (a regular expression, checked here), and the schemes. Only https, and not from the
# environment: tests add http to serve a certificate on 127.0.0.1.
TAYORI_SNS_CERT_HOST = re.compile(
    env_str("TAYORI_SNS_CERT_HOST", r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")).pattern
TAYORI_SNS_CERT_SCHEMES = ("https",)

# REST API: requests per minute per key.
API_RATE_LIMIT_PER_MINUTE = int(env_str("TAYORI_API_RATE_LIMIT", "600"))

LOG_LEVEL = env_str("TAYORI_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # aiosmtpd logs every SMTP command and flufl.bounce every detector it tries at INFO; tayori
    # mx logs what each mail became instead.
    "loggers": {"django.db.backends": {"level": "INFO"}, "mail.log": {"level": "WARNING"},
                "flufl.bounce": {"level": "WARNING"}},
}

if ENVIRONMENT == "production":
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
os.environ.setdefault("TAYORI_SETTINGS_LOADED", "1")
