"""Who is signed in to the pages, and the guard against forged forms.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax), holding a random session id and
the CSRF token, never the key. The server keeps the session (api/auth.py, `page_sessions`):
every request reads it joined to its key, so signing out, or revoking the key, ends it at the
next request in every process, and a copy of the cookie taken before opens nothing. A session
lasts SESSION_LIFETIME from signing in, not Flask's month. Every POST carries the CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Request, abort, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

from api.auth import Caller
from api.context import resources

PAGE_ROLES = ("agent", "compliance")
"""A brand key is for a brand's CRM, not for people: the pages refuse it."""
CSRF_FIELD = "csrf_token"
SESSION_ID = "session"
"""The cookie's name for the session id (its SHA-256 is the server's row)."""
SIGNER = "trustledger-pages-signer"
SESSION_LIFETIME = timedelta(hours=10)
"""A working day from signing in; then the pages ask for the key again."""
F = TypeVar("F", bound=Callable[..., Any])


class PageSessions(SecureCookieSessionInterface):
    """Signed cookies for the pages only; the API's requests get none (they carry a key)."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Made once per process: the secret comes from the master key, read from its source."""
        found: URLSafeTimedSerializer | None = app.extensions.get(SIGNER)
        if found is None:
            found = URLSafeTimedSerializer(
                app.config["SETTINGS"].session_secret(),
                salt=self.salt,
                serializer=self.serializer,
                signer_kwargs={
                    "key_derivation": self.key_derivation,
                    "digest_method": self.digest_method,
                },
            )
            app.extensions[SIGNER] = found
        return found

    def open_session(self, app: Flask, request: Request) -> Any:
        if not request.path.startswith("/ui"):
            return self.session_class()
        return super().open_session(app, request)


def configure(app: Flask) -> None:
    app.session_interface = PageSessions()
    app.config.update(
        SESSION_COOKIE_NAME="trustledger_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/ui",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,  # also how old a cookie may be when read
        SESSION_COOKIE_SECURE=app.config["SETTINGS"].secure_cookies.lower() in ("1", "true", "yes"),
    )


def csrf_token() -> str:
    """This session's token for forms, made on first use."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(session[CSRF_FIELD])


def check_csrf() -> None:
    """Refuses a POST whose token is not this session's (a form posted from another site)."""
    if request.method != "POST":
        return
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD, "")
    # As bytes: compare_digest refuses str holding anything but ASCII (a TypeError, so a 500).
    if not expected or not hmac.compare_digest(str(expected).encode(), given.encode()):
        abort(400, "This form has expired or did not come from these pages; reload and try again.")


def sign_in(caller: Caller) -> bool:
    """Opens a session for the caller in this browser, ending any it held; False if the key
    was revoked since it was checked."""
    sign_out()
    opened = resources().keys.open_session(caller, SESSION_LIFETIME)
    if opened is None:
        return False
    session[SESSION_ID] = opened
    csrf_token()
    return True


def sign_out() -> None:
    """Ends this browser's session on the server, then forgets it here."""
    session_id = session.get(SESSION_ID)
    if session_id:
        resources().keys.end_session(str(session_id))
    session.clear()


def signed_in() -> Caller | None:
    """The signed-in caller, while their session and key are live and allowed on the pages."""
    session_id = session.get(SESSION_ID)
    if not session_id:
        return None
    caller = resources().keys.session_caller(str(session_id))
    if caller is None or caller.role not in PAGE_ROLES:
        session.clear()
        return None
    return caller


def page(*roles: str) -> Callable[[F], F]:
    """A page for these roles: signed out goes to sign-in, another role gets 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            caller = signed_in()
            if caller is None:
                return redirect(url_for("ui.sign_in_form", next=this_page()))
            if caller.role not in roles:
                abort(403)
            g.caller = caller
            return view(*args, **kwargs)

        return cast(F, guarded)

    return decorate


def this_page() -> str:
    """The page asked for, as its links name it: request.path is decoded, and the slash of a
    customer reference in it no longer encoded (`x%2F..%2Fc` read `x/../c`, which a browser
    sends on as `c`)."""
    path = url_for(str(request.endpoint), **(request.view_args or {}))
    query = request.query_string.decode("latin-1")
    return f"{path}?{query}" if query else path


def caller() -> Caller:
    found: Caller = g.caller
    return found
