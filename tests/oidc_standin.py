"""Stand-ins for the identity providers Wharf's sign-in talks to, each a threaded HTTP server on a free
127.0.0.1 port, speaking the real protocols to django-allauth's real provider code (docs/decisions/0038).

- `OidcProvider`: discovery, /authorize (a login + consent form; "Deny" answers access_denied), /token
  (client secret by post or Basic, one-use codes bound to their redirect_uri, S256 PKCE), an RS256
  id_token (iss, aud, exp, iat, nonce when sent, sub, email, email_verified), /userinfo, /jwks.
- `GitHubStandIn`: /login/oauth/authorize and /access_token, /api/v3/user and /api/v3/user/emails: the
  paths allauth's GitHub provider uses with a GitHub Enterprise URL (`GITHUB_URL`).

What the person types into the form decides who signs in. `tamper` changes the claims of the next
id_tokens (a provider that lies); `token_requests` keeps what each token request sent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CODE_TTL = 60


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: Any, **headers: str) -> Answer:
    return Answer(status, json.dumps(data).encode(), "application/json", {"Cache-Control": "no-store", **headers})


def _redirect(url: str, **params: str) -> Answer:
    sep = "&" if urlsplit(url).query else "?"
    return Answer(302, b"", "text/plain", {"Location": url + sep + urlencode({k: v for k, v in params.items() if v})})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: Any

    def param(self, name: str) -> str:
        return self.form.get(name) or self.query.get(name) or ""


class StandIn:
    """A threaded HTTP server that hands each request to `route(request) -> Answer`."""

    title = "Stand-in"

    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id = client_id
        self.secret = secret
        self.redirect_uris: set[str] = set()
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def routes(self) -> dict[tuple[str, str], Any]:
        """(method, path) -> handler(request) -> Answer."""
        return {}

    def route(self, request: Request) -> Answer:
        handler = self.routes().get((request.method, request.path))
        return handler(request) if handler else _json(404, {"error": "not_found"})

    # --- the parts both protocols share ---

    def authorize_check(self, request: Request) -> Answer | None:
        """An authorize request for an unknown client or redirect_uri is refused here, never redirected (RFC 6749 §4.1.2.1)."""
        if request.param("client_id") != self.client_id:
            return Answer(400, b"unknown client_id", "text/plain")
        if request.param("redirect_uri") not in self.redirect_uris:
            return Answer(400, b"redirect_uri is not registered for this client", "text/plain")
        return None

    def consent_form(self, request: Request) -> Answer:
        """The login + consent page (username, email, "verified"): the request's parameters ride along as hidden fields."""
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in {**request.query, **request.form}.items()
        )
        inputs = "".join(
            f'<p><label for="{name}">{name.title()}</label> <input id="{name}" name="{name}" type="text"></p>'
            for name in ("username", "email")
        )
        page = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{self.title}: sign in</title></head>'
            f"<body><main><h1>{self.title}</h1><p>{html.escape(request.param('client_id'))} asks to know who you are.</p>"
            f'<form method="post">{hidden}{inputs}'
            '<p><input id="email_verified" name="email_verified" type="checkbox" value="true" checked>'
            ' <label for="email_verified">Email address verified</label></p>'
            '<button name="decision" value="allow">Sign in and allow</button> '
            '<button name="decision" value="deny">Deny</button></form></main></body></html>'
        )
        return Answer(200, page.encode(), "text/html; charset=utf-8")

    def code_issue(self, request: Request, person: dict[str, Any]) -> str:
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {
                "person": person,
                "redirect_uri": request.param("redirect_uri"),
                "nonce": request.param("nonce"),
                "code_challenge": request.param("code_challenge"),
                "code_challenge_method": request.param("code_challenge_method") or "plain",
                "expires": time.time() + CODE_TTL,
            }
        return code

    def client_authenticate(self, request: Request) -> bool:
        client_id, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(secret, self.secret)

    def code_redeem(self, request: Request) -> tuple[dict[str, Any] | None, str]:
        """The grant behind a token request's code (used up), or None and the OAuth error code."""
        self.token_requests.append(dict(request.form))
        if not self.client_authenticate(request):
            return None, "invalid_client"
        with self.lock:
            grant = self.codes.pop(request.form.get("code", ""), None)
        if grant is None or grant["expires"] < time.time():
            return None, "invalid_grant"
        if grant["redirect_uri"] != request.form.get("redirect_uri"):
            return None, "invalid_grant"
        if grant["code_challenge"] and not _pkce_ok(grant, request.form.get("code_verifier", "")):
            return None, "invalid_grant"
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[token] = grant["person"]
        return {**grant, "access_token": token}, ""

    def bearer_person(self, request: Request, scheme: str) -> dict[str, Any] | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(scheme + " "):
            return None
        return self.access_tokens.get(auth[len(scheme) + 1 :])


def _pkce_ok(grant: dict[str, Any], verifier: str) -> bool:
    if grant["code_challenge_method"] == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        expected = verifier
    return bool(verifier) and secrets.compare_digest(expected, grant["code_challenge"])


class OidcProvider(StandIn):
    title = "Stand-in SSO"

    def __init__(self, client_id: str = "wharf-oidc", secret: str | None = None) -> None:
        super().__init__(client_id, secret or secrets.token_urlsafe(16))
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        # Claims to change in the id_tokens issued from now on (a provider that lies or errs).
        self.tamper: dict[str, Any] = {}

    def routes(self) -> dict[tuple[str, str], Any]:
        return {
            ("GET", "/.well-known/openid-configuration"): self.discovery,
            ("GET", "/authorize"): self.authorize,
            ("POST", "/authorize"): self.authorize,
            ("POST", "/token"): self.token,
            ("GET", "/userinfo"): self.userinfo,
            ("GET", "/jwks"): self.jwks,
        }

    def discovery(self, request: Request) -> Answer:
        return _json(
            200,
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["S256", "plain"],
                "claims_supported": ["sub", "email", "email_verified", "preferred_username", "name"],
            },
        )

    def authorize(self, request: Request) -> Answer:
        refused = self.authorize_check(request)
        if refused:
            return refused
        redirect_uri, state = request.param("redirect_uri"), request.param("state")
        if request.param("response_type") != "code" or "openid" not in request.param("scope").split():
            return _redirect(redirect_uri, error="invalid_request", state=state)
        if request.method == "GET":
            return self.consent_form(request)
        if request.form.get("decision") != "allow":
            return _redirect(redirect_uri, error="access_denied", error_description="The user said no.", state=state)
        username = request.form.get("username", "").strip()
        person = {
            "sub": "sub-" + username,
            "preferred_username": username,
            "name": username.title(),
            "email": request.form.get("email", "").strip(),
            "email_verified": request.form.get("email_verified") == "true",
        }
        return _redirect(redirect_uri, code=self.code_issue(request, person), state=state)

    def token(self, request: Request) -> Answer:
        if request.form.get("grant_type") != "authorization_code":
            return _json(400, {"error": "unsupported_grant_type"})
        grant, error = self.code_redeem(request)
        if grant is None:
            return _json(401 if error == "invalid_client" else 400, {"error": error})
        return _json(
            200,
            {
                "access_token": grant["access_token"],
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(grant["person"], nonce=grant["nonce"]),
            },
        )

    def id_token(self, person: dict[str, Any], *, nonce: str = "") -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.client_id, "iat": now, "exp": now + 300, **person}
        if nonce:
            claims["nonce"] = nonce
        claims.update(self.tamper)
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def userinfo(self, request: Request) -> Answer:
        person = self.bearer_person(request, "Bearer")
        if person is None:
            return _json(401, {"error": "invalid_token"}, **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return _json(200, person)

    def jwks(self, request: Request) -> Answer:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return _json(200, {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]})


class GitHubStandIn(StandIn):
    title = "Stand-in GitHub"

    def __init__(self, client_id: str = "wharf-github", secret: str | None = None) -> None:
        super().__init__(client_id, secret or secrets.token_urlsafe(16))
        self.ids: dict[str, int] = {}

    def routes(self) -> dict[tuple[str, str], Any]:
        return {
            ("GET", "/login/oauth/authorize"): self.authorize,
            ("POST", "/login/oauth/authorize"): self.authorize,
            ("POST", "/login/oauth/access_token"): self.access_token,
            ("GET", "/api/v3/user"): self.user,
            ("GET", "/api/v3/user/emails"): self.emails,
        }

    def authorize(self, request: Request) -> Answer:
        refused = self.authorize_check(request)
        if refused:
            return refused
        redirect_uri, state = request.param("redirect_uri"), request.param("state")
        if request.method == "GET":
            return self.consent_form(request)
        if request.form.get("decision") != "allow":
            return _redirect(
                redirect_uri, error="access_denied", error_description="The user has denied your application access.", state=state
            )
        login = request.form.get("username", "").strip()
        with self.lock:
            user_id = self.ids.setdefault(login, 1000 + len(self.ids))
        email = request.form.get("email", "").strip()
        person = {"id": user_id, "login": login, "email": email, "verified": request.form.get("email_verified") == "true"}
        return _redirect(redirect_uri, code=self.code_issue(request, person), state=state)

    def access_token(self, request: Request) -> Answer:
        grant, error = self.code_redeem(request)
        # GitHub answers 200 with an error body; form-encoded unless the client asks for JSON.
        data = (
            {"error": error}
            if grant is None
            else {"access_token": grant["access_token"], "scope": "read:user,user:email", "token_type": "bearer"}
        )
        if "application/json" in request.headers.get("Accept", ""):
            return _json(200, data)
        return Answer(200, urlencode(data).encode(), "application/x-www-form-urlencoded")

    def user(self, request: Request) -> Answer:
        person = self.bearer_person(request, "token")
        if person is None:
            return _json(401, {"message": "Bad credentials"})
        return _json(
            200,
            {
                "id": person["id"],
                "login": person["login"],
                "name": person["login"].title(),
                "email": None,  # a private email: only /user/emails tells it
                "html_url": f"{self.url}/{person['login']}",
                "avatar_url": f"{self.url}/avatars/{person['id']}",
            },
        )

    def emails(self, request: Request) -> Answer:
        person = self.bearer_person(request, "token")
        if person is None:
            return _json(401, {"message": "Bad credentials"})
        return _json(200, [{"email": person["email"], "primary": True, "verified": person["verified"], "visibility": "private"}])


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            request = Request(
                method=self.command,
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query).items()},
                form={k: v[0] for k, v in parse_qs(body).items()},
                headers=self.headers,
            )
            answer = standin.route(request)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class IdentityProviders:
    oidc: OidcProvider
    github: GitHubStandIn

    def register(self, base_url: str) -> None:
        """Accept the callback URLs of a Wharf at `base_url` (the live server, or the test client's http://testserver)."""
        self.oidc.redirect_uris.add(f"{base_url}/accounts/oidc/oidc/login/callback/")
        self.github.redirect_uris.add(f"{base_url}/accounts/github/login/callback/")

    def env(self) -> dict[str, str]:
        """The GATEWAY_OIDC_* / GATEWAY_GITHUB_* environment that points a Wharf at these stand-ins."""
        return {
            "GATEWAY_OIDC_CLIENT_ID": self.oidc.client_id,
            "GATEWAY_OIDC_SECRET": self.oidc.secret,
            "GATEWAY_OIDC_SERVER_URL": self.oidc.url,
            "GATEWAY_OIDC_NAME": OidcProvider.title,
            "GATEWAY_GITHUB_CLIENT_ID": self.github.client_id,
            "GATEWAY_GITHUB_SECRET": self.github.secret,
            "GATEWAY_GITHUB_URL": self.github.url,
        }

    def stop(self) -> None:
        self.oidc.stop()
        self.github.stop()


def start_identity_providers() -> IdentityProviders:
    return IdentityProviders(oidc=OidcProvider().start(), github=GitHubStandIn().start())
