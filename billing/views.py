"""The payment provider's webhook endpoint (docs/decisions/0045): a plain Django view, authenticated by the
signature alone. 400 on a bad signature (nothing changed), 200 on success and on a replay (so Stripe stops resending),
404 when this gateway does not take Stripe payments."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.conf import app_settings
from billing.payments import WebhookRejected
from gateway.core.errors import ApplicationError

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 512 * 1024  # Stripe's events are a few KiB; anything this large is not one


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Verify and apply one Stripe event, in one transaction, once per event id."""
    if app_settings.provider != "stripe":
        return JsonResponse({"error": "This gateway takes no Stripe payments."}, status=404)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        return JsonResponse({"error": f"The body is larger than {MAX_BODY_BYTES} bytes."}, status=413)
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return JsonResponse({"error": f"The body is larger than {MAX_BODY_BYTES} bytes."}, status=413)
    from billing.payments.stripe_provider import StripeProvider

    try:
        result = StripeProvider().webhook_handle(body=body, headers=request.headers)
    except WebhookRejected as exc:
        log.warning("stripe webhook rejected: %s", exc.message)
        return JsonResponse({"error": exc.message}, status=400)
    except ApplicationError as exc:
        # A genuine event this gateway cannot apply now (e.g. its plan was deactivated): rolled back, 500, so
        # Stripe sends it again (for up to three days) while the log tells the operators what to fix.
        log.error("stripe webhook could not be applied: %s", exc.message)
        return JsonResponse({"error": exc.message}, status=500)
    return JsonResponse({"received": True, "event": result.event_id, "outcome": result.outcome, "duplicate": result.duplicate})
