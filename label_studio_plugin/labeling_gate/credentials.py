"""The administrator's credentials, applied at every start from the secrets' current values.

Label Studio applies LABEL_STUDIO_PASSWORD and LABEL_STUDIO_USER_TOKEN only when it first creates the user
(label_studio/server.py, _create_user), so a rotated secret, or a database restored under a new stack, would
leave the old password and token working and the new ones refused. Here an existing user is brought in step:
its password set when it no longer matches, its API token replaced when it differs (the old one stops working
at once, on every task, since tokens live in the database). Nothing is written when everything matches, so
tasks starting side by side do not fight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Label Studio ignores a token this short (server.py: ``len(token) > 5``); a rotated one is 40 hex digits.
MIN_TOKEN_LENGTH = 6


class CredentialsError(Exception):
    pass


@dataclass
class Applied:
    email: str
    created: bool = False
    changed: list[str] = field(default_factory=list)


def apply_admin_credentials(email: str, password: str, token: str) -> Applied:
    from django.db import transaction
    from organizations.models import Organization
    from rest_framework.authtoken.models import Token
    from users.models import User

    email = email.strip()
    if not email or not password:
        raise CredentialsError("LABEL_STUDIO_USERNAME and LABEL_STUDIO_PASSWORD must both be set")
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise CredentialsError(f"LABEL_STUDIO_USER_TOKEN must be at least {MIN_TOKEN_LENGTH} characters")
    applied = Applied(email)
    with transaction.atomic():
        user = User.objects.select_for_update().filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=password)
            user.username = email.split("@")[0]
            applied.created = True
        else:
            if not user.check_password(password):
                user.set_password(password)
                applied.changed.append("password")
        for flag in ("is_active", "is_staff", "is_superuser"):
            if not getattr(user, flag):
                setattr(user, flag, True)
                applied.changed.append(flag)
        user.save()
        if user.active_organization is None:
            organization = Organization.objects.first()
            if organization is None:
                organization = Organization.create_organization(created_by=user, title="Label Studio")
            else:
                organization.add_user(user)
            user.active_organization = organization
            user.save(update_fields=["active_organization"])
        if token:
            current = Token.objects.filter(user=user).first()
            if current is None or current.key != token:
                if Token.objects.filter(key=token).exclude(user=user).exists():
                    raise CredentialsError("LABEL_STUDIO_USER_TOKEN is another user's token")
                Token.objects.filter(user=user).delete()
                Token.objects.create(user=user, key=token)
                applied.changed.append("token")
    return applied
