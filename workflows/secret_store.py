"""Secrets: named values steps use, encrypted at rest, never shown again.

Values are encrypted with Fernet (AES-128-CBC and HMAC-SHA256) under the
keys of ``ORCH_SECRETS_KEYS``, newest first: the first encrypts, any of them
decrypts, so a new key is put in front and ``rotate_secrets`` re-encrypts
every value with it before the old one is removed. Without the setting, a
key is generated once into the var folder (``secrets_key``, mode 0600),
which suits one machine; the server and every Celery worker need the same
keys.

A step names the secrets it uses (``secrets: [DEPLOY_TOKEN]``); a workflow's
own secret wins over a global one of the same name. What a step prints,
outputs or fails with is masked (runs/logs/masking.py).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from orchestrator_site.accounts import audit
from workflows.limits import shown, text_bytes, unstorable
from workflows.models import Secret, Workflow
from workflows.params import SEALED, Param, is_sealed

NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
NAME_RULE = "capital letters, digits and underscores, not starting with a digit, at most 64"
# Taken by the step's environment already: a secret may not replace them.
RESERVED_PREFIXES = ("ORCH_", "PARAM_", "STEPS_")
RESERVED_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "PWD", "IFS"}
)
VALUE_MAX_BYTES = 64 * 1024
SECRETS_PER_STEP_MAX = 50
SECRETS_PER_SCOPE_MAX = 500


class SecretError(Exception):
    """A secret cannot be stored or read; the message says why."""


def name_problem(name: object) -> str | None:
    """Why *name* cannot name a secret, or None."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"{shown(name)} is not a secret name ({NAME_RULE})"
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES) or name.startswith("LC_"):
        return f"{name} is taken by the step's own environment"
    return None


def _key_file() -> Path:
    return Path(settings.VAR_DIR) / "secrets_key"


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise SecretError(
            "ORCH_SECRETS_KEYS holds a key that is not a Fernet key (32 url-safe base64 bytes; "
            "make one with manage.py rotate_secrets --new-key)"
        ) from None


def keys() -> tuple[str, ...]:
    """The keys, newest first: ORCH_SECRETS_KEYS, else the var folder's key file."""
    if settings.ORCH_SECRETS_KEYS:
        return tuple(settings.ORCH_SECRETS_KEYS)
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with open(path, "x", encoding="ascii") as handle:  # another process may win
                path.chmod(0o600)
                handle.write(Fernet.generate_key().decode())
        except FileExistsError:
            pass
    return (path.read_text(encoding="ascii").strip(),)


def new_key() -> str:
    return Fernet.generate_key().decode()


def encrypt(value: str) -> str:
    return _fernet(keys()).encrypt(value.encode()).decode()


def decrypt(token: str, name: str = "a secret") -> str:
    try:
        return _fernet(keys()).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretError(
            f"{name} cannot be decrypted with the keys this process has "
            "(ORCH_SECRETS_KEYS must be the same on the server and every worker)"
        ) from None


def value_problem(value: object) -> str | None:
    if not isinstance(value, str) or value == "":
        return "a secret needs a value"
    if unstorable(value):
        return "holds a NUL character or an unpaired surrogate"
    if (size := text_bytes(value)) > VALUE_MAX_BYTES:
        return f"is {size:,} bytes; a secret holds at most {VALUE_MAX_BYTES:,}"
    return None


def put(workflow: Workflow | None, name: str, value: str, *, user=None) -> tuple[Secret, bool]:
    """Set (or replace) the secret *name*; returns it and whether it is new."""
    if problem := name_problem(name):
        raise SecretError(problem)
    if problem := value_problem(value):
        raise SecretError(f"{name}: {problem}")
    with transaction.atomic():
        existing = Secret.objects.select_for_update().filter(workflow=workflow, name=name).first()
        if existing is None:
            if Secret.objects.filter(workflow=workflow).count() >= SECRETS_PER_SCOPE_MAX:
                raise SecretError(f"at most {SECRETS_PER_SCOPE_MAX} secrets here")
            secret = Secret.objects.create(
                workflow=workflow, name=name, encrypted=encrypt(value), updated_by=user
            )
            _record("secret.set", workflow, name, user)
            return secret, True
        existing.encrypted = encrypt(value)
        existing.updated_by = user
        existing.save(update_fields=["encrypted", "updated_by", "updated_at"])
        _record("secret.replaced", workflow, name, user)
        return existing, False


def remove(workflow: Workflow | None, name: str, *, user=None) -> bool:
    deleted, _ = Secret.objects.filter(workflow=workflow, name=name).delete()
    if deleted:
        _record("secret.deleted", workflow, name, user)
    return bool(deleted)


def _record(action: str, workflow: Workflow | None, name: str, user) -> None:
    """The audit log names the secret and where it is, never its value."""
    where = workflow.slug if workflow is not None else "every workflow"
    audit.record(
        action,
        object_type="secret",
        object_id=name,
        label=f"{name} of {where}",
        user=user,
        details={"workflow": workflow.slug if workflow is not None else None},
    )


def listed(workflow: Workflow | None) -> list[Secret]:
    """The secrets of *workflow* (or the global ones): names and dates, no values."""
    return list(
        Secret.objects.filter(workflow=workflow).select_related("updated_by").defer("encrypted")
    )


def values_for(workflow_id: int | None, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The values of *names* for a step of the workflow; SecretError names the missing."""
    if not names:
        return {}
    rows = Secret.objects.filter(
        Q(workflow_id=workflow_id) | Q(workflow__isnull=True), name__in=names
    ).values_list("name", "workflow_id", "encrypted")
    found: dict[str, tuple[bool, str]] = {}
    for name, owner, token in rows:
        own = owner is not None
        if name not in found or own:  # the workflow's own wins
            found[name] = (own, token)
    missing = [name for name in names if name not in found]
    if missing:
        raise SecretError(
            f"the secret{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not set: set "
            f"{'them' if len(missing) > 1 else 'it'} on the workflow's Secrets page"
        )
    return {name: decrypt(token, name) for name, (_, token) in found.items()}


# Every stored value encrypted with these keys: (app label.model, field).
# Rotation re-encrypts them all, so no key is removed while a value needs it.
ENCRYPTED_FIELDS = (
    ("workflows.Secret", "encrypted"),
    ("hooks.Webhook", "secret_encrypted"),
    ("notify.Target", "secret_encrypted"),
)


def rotate() -> int:
    """Encrypt every secret with the newest key; returns how many were.

    Secrets, webhooks' signing secrets and notifications' signing secrets,
    in one transaction: a value no key decrypts leaves everything as it was.
    """
    fernet = _fernet(keys())
    count = 0
    with transaction.atomic():
        for label, field in ENCRYPTED_FIELDS:
            model = apps.get_model(label)
            rows = model.objects.select_for_update().exclude(**{field: ""})
            for pk, token in rows.values_list("pk", field):
                try:
                    fresh = fernet.rotate(token.encode()).decode()
                except InvalidToken:
                    what = f"{model._meta.verbose_name} {model.objects.get(pk=pk)}"
                    raise SecretError(
                        f"{what} cannot be decrypted with any key in ORCH_SECRETS_KEYS; "
                        "nothing was rotated"
                    ) from None
                model.objects.filter(pk=pk).update(**{field: fresh})
                count += 1
    return count


def seal_params(specs: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """A run's parameter values as it keeps them: secret ones encrypted (``is_sealed``)."""
    secret = {spec.name for spec in specs if spec.secret}
    return {
        name: {SEALED: encrypt(value)}
        if name in secret and isinstance(value, str) and value
        else value
        for name, value in values.items()
    }


def reveal_params(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The values a step is given, and those of them that were secret (to mask)."""
    revealed, secret = {}, []
    for name, value in values.items():
        if is_sealed(value):
            value = decrypt(value[SEALED], f"the parameter {name}")
            secret.append(value)
        revealed[name] = value
    return revealed, secret
