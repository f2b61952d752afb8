"""set_visibility TENANT/REPO public|private"""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import tenant_get
from gateway.core.errors import ApplicationError
from gateway.registry.services.repositories import repository_visibility_set


class Command(BaseCommand):
    help = "Make a repository public (anonymous pull) or private. Prints JSON."

    def add_arguments(self, parser):
        parser.add_argument("repository", help="TENANT/REPOSITORY")
        parser.add_argument("visibility", choices=["public", "private"])

    def handle(self, *args, repository, visibility, **options):
        slug, _, name = repository.partition("/")
        tenant = tenant_get(slug=slug) if slug else None
        if tenant is None or not name:
            raise CommandError(f"No repository {repository!r}: give TENANT/REPOSITORY of an existing tenant.")
        try:
            repo = repository_visibility_set(tenant=tenant, name=name, visibility=visibility, actor="manage.py")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps({"repository": f"{slug}/{repo.name}", "visibility": repo.visibility}))
