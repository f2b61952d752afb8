"""What every payment provider offers the faces (docs/decisions/0045), and the errors they raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from accounts.models import Tenant
from billing.models import Subscription
from gateway.core.errors import ServiceUnavailable, ValidationError


class WebhookRejected(ValidationError):
    """A webhook request that is not a genuine, recent, well-formed event of the provider: 400, nothing changed."""


class ProviderUnavailable(ServiceUnavailable):
    """The payment provider could not be reached or refused the call; nothing was changed here, the user may retry."""


@dataclass(frozen=True)
class WebhookResult:
    """What handling one webhook event did: `duplicate` when the event id was seen before (nothing done again)."""

    event_id: str
    event_type: str
    outcome: str
    duplicate: bool = False


class PaymentProvider(Protocol):
    """A way for tenants to pay: Stripe or bank transfer. Every method is safe to retry."""

    name: str
    has_portal: bool  # whether `portal_open` gives customers a page for their payment methods

    def checkout_start(self, *, tenant: Tenant, plan_code: str, actor: str, return_url: str) -> str:
        """Start subscribing the tenant to the plan; the URL to send the browser to (it comes back to `return_url`)."""
        ...

    def portal_open(self, *, tenant: Tenant, return_url: str) -> str:
        """The URL of the provider's page where the tenant's owners manage payment methods."""
        ...

    def plan_changes_in_portal(self, *, subscription: Subscription | None) -> bool:
        """Whether the subscription is already paid through the provider, so its plan changes on the provider's page
        (portal) and `checkout_start` refuses a second one."""
        ...

    def webhook_handle(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """Verify, parse and apply one webhook request, once per event id (WebhookRejected when not genuine)."""
        ...

    def subscription_cancel(self, *, tenant: Tenant, actor: str) -> Subscription:
        """Cancel the tenant's paid subscription (Stripe: at the end of the paid period; manual: now)."""
        ...
