"""Worker accounts: made by the pipeline's operator (the CLI, with the pipeline's token), never by sign-up.

A new worker gets no password. The operator hands over a link on which the worker chooses one: Django's own
password reset token (django.contrib.auth.tokens.default_token_generator), which expires after
PASSWORD_RESET_TIMEOUT and dies as soon as the password is set or the worker signs in. A forgotten password is a
new link; asking for one also makes the old password unusable, which signs the worker out everywhere (Django
checks each session against the password's hash). Removing a worker deactivates the account (no sign-in, no
token) and ends the membership as Label Studio's own API does; their annotations keep their author.

Reviewers (review.py) are workers in the auth group ``REVIEWER_GROUP``, made on first use. ``add_worker`` with
``reviewer``:
- None (not given): a new account, a plain worker; an existing worker is refused (409, "already a worker");
- True: a new account in the group, with its password link; an existing worker is put in the group, without a
  link (they keep their password, or the link they were given; a lost one is ``reset``); already a reviewer:
  409;
- False: an existing reviewer leaves the group (their account and answers stay); an existing worker who is no
  reviewer: 409; anyone else: 404 (no account is made).
Removing a worker takes them out of the group too, so that one added again later starts as a plain worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from organizations.models import Organization, OrganizationMember
from users.models import User

from labeling_gate.review import REVIEWER_GROUP


class AccountError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PasswordLink:
    email: str
    url: str
    hours: int


@dataclass(frozen=True)
class Added:
    email: str
    reviewer: bool
    # None: an existing worker whose reviewer role changed, who keeps their password.
    link: PasswordLink | None


def normalized(email: str) -> str:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise AccountError(f"not an email address: {email!r}", 400)
    return email


def password_link(user: User, base_url: str) -> PasswordLink:
    path = reverse(
        "labeling-choose-password",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return PasswordLink(
        user.email, urljoin(base_url.rstrip("/") + "/", path.lstrip("/")), settings.PASSWORD_RESET_TIMEOUT // 3600
    )


def _organization_of(admin: User) -> Organization:
    organization = admin.active_organization or Organization.objects.first()
    if organization is None:
        raise AccountError("Label Studio has no organization yet", 409)
    return organization


def reviewers_group() -> Group:
    group, _ = Group.objects.get_or_create(name=REVIEWER_GROUP)
    return group


def is_reviewer(user: User) -> bool:
    return bool(user.groups.filter(name=REVIEWER_GROUP).exists())


def _set_reviewer(user: User, reviewer: bool) -> None:
    if reviewer:
        user.groups.add(reviewers_group())
    else:
        user.groups.remove(*Group.objects.filter(name=REVIEWER_GROUP))


def add_worker(admin: User, email: str, base_url: str, *, reviewer: bool | None = None) -> Added:
    email = normalized(email)
    organization = _organization_of(admin)
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).first()
        if user is not None and user.is_active and _is_member(user, organization):
            if reviewer is None:
                raise AccountError(f"{email} is already a worker", 409)
            return _change_role(_worker(admin, email), email, reviewer)
        if reviewer is False:
            raise AccountError(f"{email} is not a worker", 404)
        if user is None:
            user = User.objects.create_user(email=email, password=None)
            user.username = email.split("@")[0]
        user.is_active = True
        user.set_unusable_password()
        user.save()
        member = OrganizationMember.objects.filter(user=user, organization=organization).first()
        if member is None:
            organization.add_user(user)
        elif member.deleted_at is not None:
            member.deleted_at = None
            member.save(update_fields=["deleted_at"])
        user.active_organization = organization
        user.save(update_fields=["active_organization"])
        _set_reviewer(user, bool(reviewer))
    return Added(email, bool(reviewer), password_link(user, base_url))


def _change_role(user: User, email: str, reviewer: bool) -> Added:
    if is_reviewer(user) == reviewer:
        raise AccountError(f"{email} is already a reviewer" if reviewer else f"{email} is not a reviewer", 409)
    _set_reviewer(user, reviewer)
    return Added(email, reviewer, None)


def _is_member(user: User, organization: Organization) -> bool:
    return OrganizationMember.objects.filter(user=user, organization=organization, deleted_at__isnull=True).exists()


def _worker(admin: User, email: str) -> User:
    email = normalized(email)
    user = User.objects.filter(email__iexact=email).first()
    if user is None or not user.is_active or not _is_member(user, _organization_of(admin)):
        raise AccountError(f"{email} is not a worker", 404)
    if user.is_superuser:
        raise AccountError(f"{email} is an administrator, not a worker", 409)
    return user


def new_password_link(admin: User, email: str, base_url: str) -> PasswordLink:
    user = _worker(admin, email)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return password_link(user, base_url)


def remove_worker(admin: User, email: str) -> None:
    user = _worker(admin, email)
    with transaction.atomic():
        user.is_active = False
        user.set_unusable_password()
        user.save(update_fields=["is_active", "password"])
        _set_reviewer(user, False)
        member = OrganizationMember.objects.get(user=user, organization=_organization_of(admin))
        member.soft_delete()


def list_workers(admin: User) -> list[dict[str, object]]:
    organization = _organization_of(admin)
    members = OrganizationMember.objects.filter(organization=organization, deleted_at__isnull=True).select_related(
        "user"
    )
    reviewers = set(User.objects.filter(groups__name=REVIEWER_GROUP).values_list("pk", flat=True))
    return sorted(
        (
            {
                "email": member.user.email,
                "has_password": member.user.has_usable_password(),
                "reviewer": member.user.pk in reviewers,
            }
            for member in members
            if member.user.is_active and not member.user.is_superuser
        ),
        key=lambda row: str(row["email"]),
    )
