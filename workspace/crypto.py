"""Encryption of upstream credentials at rest with Fernet (AES-128-CBC + HMAC)."""

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet():
    try:
        return Fernet(settings.CREDENTIAL_ENCRYPTION_KEY)
    except ValueError as error:
        raise ImproperlyConfigured(
            "CREDENTIAL_ENCRYPTION_KEY must be 32 url-safe base64-encoded bytes; "
            "generate one with Fernet.generate_key()."
        ) from error


def encrypt(plain_text):
    return _fernet().encrypt(plain_text.encode()).decode()


def decrypt(cipher_text):
    """Return the plain text, or raise ValueError if the key does not match."""
    try:
        return _fernet().decrypt(cipher_text.encode()).decode()
    except InvalidToken as error:
        raise ValueError(
            "The stored credential cannot be decrypted with CREDENTIAL_ENCRYPTION_KEY."
        ) from error
