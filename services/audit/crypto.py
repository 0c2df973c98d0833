"""Pure cryptography: AES-GCM sealing, Ed25519 checkpoint signatures, webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


def new_key() -> bytes:
    """A fresh 256-bit AES key."""
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, value: Any, aad: str) -> dict[str, str]:
    """Encrypt a JSON value; ``aad`` binds the ciphertext to its record and key id."""
    nonce = os.urandom(12)
    plain = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return {"nonce": b64(nonce), "ct": b64(AESGCM(key).encrypt(nonce, plain, aad.encode()))}


def unseal(key: bytes, blob: dict[str, Any], aad: str) -> Any:
    """Decrypt what ``seal`` produced; ValueError when the key or the context is wrong."""
    try:
        plain = AESGCM(key).decrypt(unb64(blob["nonce"]), unb64(blob["ct"]), aad.encode())
    except (InvalidTag, KeyError, ValueError) as exc:
        raise ValueError("sealed value cannot be opened") from exc
    return json.loads(plain)


def signing_key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_raw(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def public_pem(raw: bytes) -> str:
    """PEM (SubjectPublicKeyInfo) of a raw Ed25519 public key, for third parties."""
    return (
        Ed25519PublicKey.from_public_bytes(raw)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_id(public: bytes) -> str:
    """Short fingerprint naming a public key."""
    return "ed25519:" + hashlib.sha256(public).hexdigest()[:16]


def sign(private: Ed25519PrivateKey, message: bytes) -> str:
    return b64(private.sign(message))


def signature_ok(public: bytes, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is a valid Ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(unb64(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + b64(os.urandom(24))


def webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    key = unb64(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + b64(hmac.new(key, signed, hashlib.sha256).digest())
