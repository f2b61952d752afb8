"""/v2/ routes. Repository names contain slashes, so each route anchors on its suffix."""

from django.urls import re_path

from gateway.registry.v2.blobs import BlobView
from gateway.registry.v2.listing import BaseView, CatalogView, NoRouteView, ReferrersView, TagsView
from gateway.registry.v2.manifests import ManifestView
from gateway.registry.v2.token import TokenView
from gateway.registry.v2.uploads import UploadStartView, UploadView

_NAME = r"(?P<name>[^?#]+?)"

urlpatterns = [
    re_path(r"^auth/token$", TokenView.as_view()),
    re_path(r"^v2/?$", BaseView.as_view()),
    re_path(r"^v2/_catalog$", CatalogView.as_view()),
    re_path(rf"^v2/{_NAME}/blobs/uploads/?$", UploadStartView.as_view()),
    re_path(rf"^v2/{_NAME}/blobs/uploads/(?P<upload_id>[^/]+)$", UploadView.as_view()),
    re_path(rf"^v2/{_NAME}/blobs/(?P<digest>[^/]+)$", BlobView.as_view()),
    re_path(rf"^v2/{_NAME}/manifests/(?P<reference>[^/]+)$", ManifestView.as_view()),
    re_path(rf"^v2/{_NAME}/tags/list$", TagsView.as_view()),
    re_path(rf"^v2/{_NAME}/referrers/(?P<digest>[^/]+)$", ReferrersView.as_view()),
    re_path(r"^v2/", NoRouteView.as_view()),
]
