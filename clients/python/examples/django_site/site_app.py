"""A small Django site on Tessera sessions: log in, edit a note behind CSRF, log out.

Run (with a ``tessera serve`` at TESSERA_URL, its API key in TESSERA_API_KEY)::

    pip install 'tessera-sessions[django]'   # or: pip install -e clients/python django
    python site_app.py 8000                   # then open http://127.0.0.1:8000/

Sessions live in Tessera (``SESSION_ENGINE``), and so does Django's CSRF secret
(``CSRF_USE_SESSIONS``). Logging in is a Tessera login (the user index, "log out
everywhere"), logging out a Tessera logout.
"""

from __future__ import annotations

import os
import sys
from html import escape
from wsgiref.simple_server import make_server

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-site-not-a-secret"),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.sessions"],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "tessera_sessions.django.TesseraCookieMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    SESSION_ENGINE="tessera_sessions.django",
    CSRF_USE_SESSIONS=True,
    # Plain http on localhost for the example; keep the defaults (Secure) in production.
    SESSION_COOKIE_SECURE=False,
)

import django  # noqa: E402

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402

from tessera_sessions.django import AUTH_USER_KEY  # noqa: E402


def home(request: HttpRequest) -> HttpResponse:
    token = escape(get_token(request))
    user = request.session.get(AUTH_USER_KEY)
    if user is None:
        body = (
            f'<form method="post" action="/login"><input type="hidden" '
            f'name="csrfmiddlewaretoken" value="{token}"><input name="user">'
            "<button>Log in</button></form>"
        )
    else:
        note = escape(str(request.session.get("note", "")))
        body = (
            f"<p>Hello, <b id='user'>{escape(str(user))}</b>.</p><p id='note'>{note}</p>"
            f'<form method="post" action="/edit"><input type="hidden" '
            f'name="csrfmiddlewaretoken" value="{token}"><input name="note">'
            "<button>Save</button></form>"
            f'<form method="post" action="/logout"><input type="hidden" '
            f'name="csrfmiddlewaretoken" value="{token}"><button>Log out</button></form>'
        )
    return HttpResponse(f"<!doctype html><title>Tessera example</title>{body}")


@require_POST
def login(request: HttpRequest) -> HttpResponse:
    user = request.POST.get("user", "").strip()
    if not user:
        return HttpResponse("a user name, please", status=400)
    # What django.contrib.auth.login() does to the session: a new key, then the user's id;
    # the save becomes a Tessera login of that user.
    request.session.cycle_key()
    request.session[AUTH_USER_KEY] = user
    return HttpResponseRedirect("/")


@require_POST
def edit(request: HttpRequest) -> HttpResponse:
    if request.session.get(AUTH_USER_KEY) is None:
        return HttpResponse("log in first", status=403)
    request.session["note"] = request.POST.get("note", "")
    return HttpResponseRedirect("/")


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponseRedirect("/")


urlpatterns = [
    path("", home),
    path("login", login),
    path("edit", edit),
    path("logout", logout),
]


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with make_server("127.0.0.1", port, get_wsgi_application()) as server:
        print(f"example site on http://127.0.0.1:{server.server_port}/", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
