"""A small OpenID Connect provider for the sign-in tests, run as its own process on 127.0.0.1.

It serves what a relying party needs for the authorisation-code flow (OpenID Connect Core 1.0
§3.1; PKCE, RFC 7636): discovery (``/.well-known/openid-configuration``), the JWKS, an
``/authorize`` page whose form plays the user signing in (the test fills in ``sub``, ``email``
and ``email_verified``), and ``/token``, which checks the client's credentials, the code (once),
the redirect URI and the PKCE verifier, and answers with an RS256-signed ID token.

For negative tests the form also takes ``mode``: ``rogue`` signs the ID token with a key that is
not in the JWKS (same ``kid``), ``wrong_audience`` issues it for another client, ``expired``
backdates it, ``bad_nonce`` replaces the nonce.

Usage: ``python oidc_provider.py CLIENT_ID CLIENT_SECRET REDIRECT_URI``; prints the issuer URL
on the first line of standard output, then serves until killed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

KID = "test-key-1"
KEY = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})
ROGUE = RSAKey.generate_key(2048, parameters={"kid": KID})
CODES: dict[str, dict] = {}


class Provider(BaseHTTPRequestHandler):
    issuer = ""
    client_id = ""
    client_secret = ""
    redirect_uri = ""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj).encode())

    def _form(self) -> dict[str, str]:
        n = int(self.headers.get("Content-Length") or 0)
        return {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/.well-known/openid-configuration":
            return self._json(200, {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
                "scopes_supported": ["openid", "email", "profile"],
            })
        if url.path == "/jwks":
            return self._json(200, {"keys": [KEY.as_dict(private=False)]})
        if url.path == "/authorize":
            if query.get("client_id") != self.client_id or \
                    query.get("redirect_uri") != self.redirect_uri or \
                    query.get("response_type") != "code" or \
                    "openid" not in query.get("scope", "").split():
                return self._send(400, b"invalid authorization request", "text/plain")
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" '
                             f'value="{html.escape(v)}">' for k, v in query.items())
            page = (f'<form method="post" action="/authorize">{hidden}'
                    '<input name="sub"><input name="email"><input name="email_verified">'
                    '<input name="mode"><button>Sign in</button></form>')
            return self._send(200, page.encode(), "text/html")
        return self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        form = self._form()
        if url.path == "/authorize":
            code = secrets.token_urlsafe(24)
            CODES[code] = {"form": form, "at": time.time()}
            target = form["redirect_uri"] + "?" + urlencode({"code": code,
                                                             "state": form.get("state", "")})
            return self._send(302, b"", "text/plain", {"Location": target})
        if url.path == "/token":
            return self._token(form)
        return self._send(404, b"not found", "text/plain")

    def _token(self, form: dict[str, str]) -> None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id != self.client_id or secret != self.client_secret:
            return self._json(401, {"error": "invalid_client"})
        grant = CODES.pop(form.get("code", ""), None)  # a code works once
        if grant is None or form.get("grant_type") != "authorization_code" or \
                time.time() - grant["at"] > 60:
            return self._json(400, {"error": "invalid_grant"})
        request = grant["form"]
        if form.get("redirect_uri") != request["redirect_uri"]:
            return self._json(400, {"error": "invalid_grant"})
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if request.get("code_challenge_method") != "S256" or \
                challenge != request.get("code_challenge"):
            return self._json(400, {"error": "invalid_grant", "error_description": "PKCE"})
        mode = request.get("mode", "")
        now = int(time.time()) - (3600 if mode == "expired" else 0)
        claims = {"iss": self.issuer, "sub": request["sub"],
                  "aud": "someone-else" if mode == "wrong_audience" else self.client_id,
                  "iat": now, "exp": now + 300, "auth_time": now,
                  "nonce": "not-the-nonce" if mode == "bad_nonce" else request.get("nonce")}
        if request.get("email"):
            claims["email"] = request["email"]
            claims["email_verified"] = request.get("email_verified") == "true"
        access = secrets.token_urlsafe(24)
        claims["at_hash"] = base64.urlsafe_b64encode(
            hashlib.sha256(access.encode()).digest()[:16]).rstrip(b"=").decode()
        key = ROGUE if mode == "rogue" else KEY
        id_token = jwt.encode({"alg": "RS256", "kid": KID}, claims, key)
        return self._json(200, {"access_token": access, "token_type": "Bearer",
                                "expires_in": 300, "id_token": id_token})


def main() -> None:
    client_id, client_secret, redirect_uri = sys.argv[1:4]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    Provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    Provider.client_id, Provider.client_secret = client_id, client_secret
    Provider.redirect_uri = redirect_uri
    print(Provider.issuer, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
