"""Dashboard routes: `/` and `/orgs/…` (accounts pages are allauth's under /accounts/)."""

from django.urls import path

from gateway.dashboard.views import home, invitations, members, robots, tokens

app_name = "dashboard"

urlpatterns = [
    path("", home.root, name="root"),
    path("orgs/", home.home, name="home"),
    path("orgs/<slug:slug>/", home.org_overview, name="org"),
    # members: members, invitations (both sides), robot accounts, personal access tokens
    path("orgs/<slug:slug>/members/", members.members, name="members"),
    path("orgs/<slug:slug>/members/invite/", members.invite, name="member_invite"),
    path("orgs/<slug:slug>/members/<str:username>/role/", members.member_role, name="member_role"),
    path("orgs/<slug:slug>/members/<str:username>/remove/", members.member_remove, name="member_remove"),
    path(
        "orgs/<slug:slug>/invitations/<int:invitation_id>/revoke/",
        members.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path("invitations/<int:invitation_id>/respond/", invitations.invitation_respond, name="invitation_respond"),
    path("invitations/<str:token>/", invitations.invitation, name="invitation"),
    path("orgs/<slug:slug>/robots/", robots.robots, name="robots"),
    path("orgs/<slug:slug>/robots/<str:name>/", robots.robot_edit, name="robot_edit"),
    path("orgs/<slug:slug>/robots/<str:name>/rotate/", robots.robot_rotate_view, name="robot_rotate"),
    path("orgs/<slug:slug>/robots/<str:name>/revoke/", robots.robot_revoke_view, name="robot_revoke"),
    path("settings/tokens/", tokens.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token_revoke"),
]
