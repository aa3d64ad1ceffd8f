"""The token that guards the dashboard when it listens beyond this machine (STCNN_API_TOKEN).

- REST clients send `Authorization: Bearer <token>` with every request.
- A browser opens any page once as `http://host:8050/?token=<token>`: the server answers with a cookie
  (HttpOnly, SameSite=Strict, so other sites' pages cannot use it) and redirects to the same page without
  the token in the address. From then on the pages, their callbacks and their uploads to /api/uploads
  send the cookie by themselves: same origin, nothing else to configure.

Without STCNN_API_TOKEN nothing is checked, and the app refuses to listen beyond loopback (config.check_bind).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from flask import Flask, jsonify, redirect, request

COOKIE = "stcnn_session"


def _cookie_value(token: str) -> str:
    # The cookie is derived from the token, not the token itself, so a leaked cookie does not leak it.
    return hmac.new(token.encode(), b"stcnn-dashboard-cookie", hashlib.sha256).hexdigest()


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def install(server: Flask, token: str | None) -> None:
    if not token:
        return
    cookie = _cookie_value(token)

    @server.before_request
    def _require_token():
        bearer = _bearer()
        if bearer is not None and hmac.compare_digest(bearer.encode(), token.encode()):
            return None
        if hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), cookie.encode()):
            return None
        offered = request.args.get("token")
        if (
            offered is not None
            and request.method == "GET"
            and hmac.compare_digest(offered.encode(), token.encode())
        ):
            query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"])
            answer = redirect(request.path + (f"?{query}" if query else ""))
            answer.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", secure=request.is_secure)
            return answer
        if request.path.startswith("/api/"):
            answer = jsonify({"error": "Send the token: Authorization: Bearer <STCNN_API_TOKEN>."})
        else:
            answer = server.response_class(
                "This dashboard needs its token: open it once as /?token=<STCNN_API_TOKEN>.\n",
                mimetype="text/plain",
            )
        answer.status_code = 401
        answer.headers["WWW-Authenticate"] = "Bearer"
        return answer
