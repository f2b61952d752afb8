"""A stand-in for the parts of Stripe's API Wharf calls, and Stripe's webhook signing (docs/decisions/0045).

`StripeStandIn` is a threaded HTTP server on a free 127.0.0.1 port that answers like api.stripe.com for
POST /v1/checkout/sessions, POST /v1/billing_portal/sessions and POST /v1/subscriptions/<id>: it checks the secret key
(401 otherwise), honours Idempotency-Key as Stripe does (the same key replays the first answer; the same key with other
parameters is a 400 idempotency_error), and records every request (`requests`) so tests assert keys and parameters.
`fail_next(n)` answers the next n requests 500 with Stripe-Should-Retry (the SDK then retries with the same key).

`signed(event, secret)` gives a body and a Stripe-Signature header made with Stripe's real scheme
(t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<body>")); `event(type, obj)` builds a snapshot event.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl

SECRET_KEY = "sk_test_wharf_standin"
WEBHOOK_SECRET = "whsec_wharf_standin_0123456789"
CHECKOUT_HOST = "https://checkout.stripe.test"
PORTAL_HOST = "https://billing.stripe.test"
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test{next(_ids):06d}"


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    idempotency_key: str | None
    authorization: str | None


class StripeStandIn:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.idempotent: dict[str, tuple[str, dict[str, str], int, dict[str, Any]]] = {}
        self.failures = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="StripeStandIn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.idempotent.clear()
            self.failures = 0

    def fail_next(self, n: int = 1) -> None:
        with self.lock:
            self.failures = n

    def calls(self, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def answer(self, method: str, path: str, params: dict[str, str], headers: Any) -> tuple[int, dict[str, Any], dict]:
        key = headers.get("Idempotency-Key")
        with self.lock:
            self.requests.append(Recorded(method, path, params, key, headers.get("Authorization")))
            if headers.get("Authorization") != f"Bearer {SECRET_KEY}":
                return 401, _error("invalid_request_error", "Invalid API Key provided."), {}
            if self.failures:
                self.failures -= 1
                return 500, _error("api_error", "Something went wrong on Stripe's end."), {"Stripe-Should-Retry": "true"}
            if key and key in self.idempotent:
                seen_path, seen_params, status, body = self.idempotent[key]
                if (seen_path, seen_params) != (path, params):
                    message = "Keys for idempotent requests can only be used with the same parameters they were first used with."
                    return 400, _error("idempotency_error", message), {}
                return status, body, {"Idempotent-Replayed": "true"}
            status, body = self.route(method, path, params)
            if key:
                self.idempotent[key] = (path, params, status, body)
            return status, body, {}

    def route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        now = int(time.time())
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            if params.get("mode") != "subscription" or "line_items[0][price]" not in params:
                return 400, _error("invalid_request_error", "mode=subscription needs line_items with a price.")
            sid = new_id("cs")
            return 200, {
                "id": sid,
                "object": "checkout.session",
                "mode": "subscription",
                "url": f"{CHECKOUT_HOST}/c/pay/{sid}",
                "customer": params.get("customer"),
                "client_reference_id": params.get("client_reference_id"),
                "success_url": params.get("success_url"),
                "cancel_url": params.get("cancel_url"),
                "status": "open",
                "created": now,
                "expires_at": now + 86400,
            }
        if (method, path) == ("POST", "/v1/billing_portal/sessions"):
            if not params.get("customer"):
                return 400, _error("invalid_request_error", "Missing required param: customer.")
            bid = new_id("bps")
            return 200, {
                "id": bid,
                "object": "billing_portal.session",
                "customer": params["customer"],
                "return_url": params.get("return_url"),
                "url": f"{PORTAL_HOST}/p/session/{bid}",
                "created": now,
            }
        if method == "POST" and path.startswith("/v1/subscriptions/"):
            sub_id = path.rsplit("/", 1)[1]
            return 200, {
                "id": sub_id,
                "object": "subscription",
                "status": "active",
                "cancel_at_period_end": params.get("cancel_at_period_end") == "true",
            }
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path}).")


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _handler(standin: StripeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            params = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
            status, body, extra = standin.answer("POST", self.path.split("?")[0], params, self.headers)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", new_id("req"))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def event(event_type: str, obj: dict[str, Any], *, created: int | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A snapshot event as Stripe sends it to a webhook endpoint."""
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": int(time.time()) if created is None else created,
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": obj},
    }


def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe-Signature: t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>" with the endpoint's secret>."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signed(evt: dict[str, Any], secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    body = json.dumps(evt).encode()
    return body, sign(body, secret, timestamp)


# --- Stripe objects as the events carry them ---------------------------------------------------------------


def checkout_session(*, tenant_id: int, plan: str, customer: str, subscription: str, paid: bool = True) -> dict[str, Any]:
    return {
        "id": new_id("cs"),
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid" if paid else "unpaid",
        "client_reference_id": str(tenant_id),
        "customer": customer,
        "subscription": subscription,
        "metadata": {"tenant_id": str(tenant_id), "plan": plan},
    }


def subscription_object(
    *, sub_id: str, tenant_id: int, customer: str, price: str, status: str = "active", period: tuple[int, int] | None = None
) -> dict[str, Any]:
    start, end = period or (int(time.time()), int(time.time()) + 30 * 86400)
    return {
        "id": sub_id,
        "object": "subscription",
        "status": status,
        "customer": customer,
        "metadata": {"tenant_id": str(tenant_id)},
        "cancel_at_period_end": False,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": new_id("si"),
                    "object": "subscription_item",
                    "price": {"id": price, "object": "price"},
                    "current_period_start": start,
                    "current_period_end": end,
                }
            ],
        },
    }


def invoice_object(*, sub_id: str, customer: str, paid: bool, invoice_id: str | None = None) -> dict[str, Any]:
    return {
        "id": invoice_id or new_id("in"),
        "object": "invoice",
        "customer": customer,
        "status": "paid" if paid else "open",
        "billing_reason": "subscription_cycle",
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub_id, "metadata": {}}},
    }
