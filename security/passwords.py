"""Password hashing (bcrypt) and the password policy.

bcrypt is used directly rather than through ``streamlit_authenticator.utilities.Hasher``:
importing that package runs ``utilities/helpers.py``, which imports streamlit, and security/ must
not import streamlit. The hashes are the same format (``$2b$``), so streamlit-authenticator can
check them too.
"""

from __future__ import annotations

import bcrypt

DEFAULT_ROUNDS = 12  # production cost; tests pass fewer rounds explicitly
MIN_LENGTH = 12
DEMO_MIN_LENGTH = 8
MAX_BYTES = 72  # bcrypt ignores (bcrypt>=5: refuses) anything longer

# A few passwords that pass the length rule but are first in every guessing list.
_COMMON = frozenset(
    {
        "password1234",
        "passwordpassword",
        "123456789012",
        "qwertyuiopas",
        "changemechangeme",
        "letmeinletmein",
        "administrator",
        "spotlight123",
        "spotlightanalytics",
    }
)


class PasswordPolicyError(ValueError):
    """The password does not meet the policy; the message says what to change."""


def check_policy(password: str, username: str = "", *, min_length: int = MIN_LENGTH) -> None:
    """Return only when the password is acceptable; else PasswordPolicyError naming the rule."""
    if not isinstance(password, str) or not password:
        raise PasswordPolicyError("a password is required")
    if len(password) < min_length:
        raise PasswordPolicyError(
            f"the password is too short: use at least {min_length} characters "
            "(a phrase of several words is easiest to remember)"
        )
    if len(password.encode()) > MAX_BYTES:
        raise PasswordPolicyError(f"the password is too long: at most {MAX_BYTES} bytes")
    if password.strip() != password:
        raise PasswordPolicyError("the password may not start or end with a space")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise PasswordPolicyError("the password may not contain the username")
    if len(set(password)) < 4:
        raise PasswordPolicyError("the password repeats too few different characters")
    if lowered in _COMMON:
        raise PasswordPolicyError("the password is too common; choose another")


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """A salted bcrypt hash (``$2b$<rounds>$...``) of the password."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    """True when the password matches the hash; False (never an exception) otherwise."""
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:
        # Over-long passwords and malformed hashes are simply wrong, not errors.
        return False


def dummy_hash(rounds: int = DEFAULT_ROUNDS) -> str:
    """A hash of a random password, checked for unknown users so their timing matches."""
    import secrets

    return hash_password(secrets.token_urlsafe(24), rounds)
