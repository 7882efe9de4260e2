"""Django settings for the tests: Django's own session tests (from its source distribution,
``tests/sessions_tests``) and the engine's, against a real ``tessera serve`` (``TESSERA_URL``
and ``TESSERA_API_KEY`` come from the environment, set by the ``tessera_stored`` fixture)."""

import os
import sys
from pathlib import Path

# Django's test apps: the unpacked source distribution that scripts/install-peers fetched.
DJANGO_TESTS = Path(
    os.environ.get(
        "TESSERA_DJANGO_TESTS",
        Path(os.environ.get("TESSERA_PEERS_DIR", "/var/tmp/tessera-peers"))
        / "python-client/sdist/django-5.2.19/tests",
    )
)
if not (DJANGO_TESTS / "sessions_tests" / "tests.py").exists():
    raise RuntimeError(
        f"Django's session tests are missing ({DJANGO_TESTS}): run ./scripts/install-peers"
    )
sys.path.insert(0, str(DJANGO_TESTS))

SECRET_KEY = "tessera-python-client-tests-not-a-secret"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "sessions_tests",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "django_urls"
