"""Registry bearer tokens: ES256 signing, verification, and key rotation (accounts/tokens.py, accounts/token_keys.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.exceptions import ImproperlyConfigured

from accounts import token_keys
from accounts.token_keys import token_key_create, token_key_list, token_key_retire
from accounts.tokens import InvalidToken, token_sign, token_verify
from gateway.core.errors import Conflict, NotFound
from tests.helpers import command, manage

AUD = "registry.example.test"
ACCESS = [{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def signing_key(keys_dir):
    """The private key and kid that sign now, read from disk as any process would."""
    newest = sorted(keys_dir.glob("*.pem"))[-1]
    key = serialization.load_pem_private_key(newest.read_bytes(), password=None)
    return key, token_keys.key_thumbprint(key.public_key())


def claims(**overrides):
    from django.conf import settings

    now = int(time.time())
    base = {
        "iss": settings.GATEWAY_TOKEN_ISSUER,
        "sub": "alice",
        "aud": AUD,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "j1",
        "access": ACCESS,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def forge(keys_dir, drop=(), **overrides) -> str:
    """A token signed with the real current key, with any claims we like."""
    key, kid = signing_key(keys_dir)
    payload = claims(**overrides)
    for name in drop:
        payload.pop(name)
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": kid})


def test_sign_and_verify_round_trip(keys_dir, settings):
    signed = token_sign(subject="alice", audience=AUD, access=ACCESS)
    header = jwt.get_unverified_header(signed.token)
    key_file = next(keys_dir.glob("*.pem"))
    assert header == {
        "alg": "ES256",
        "kid": token_keys.key_thumbprint(serialization.load_pem_private_key(key_file.read_bytes(), None).public_key()),
        "typ": "JWT",
    }
    got = token_verify(token=signed.token, audience=AUD)
    assert got["iss"] == settings.GATEWAY_TOKEN_ISSUER == settings.EXTERNAL_URL
    assert (got["sub"], got["aud"], got["access"]) == ("alice", AUD, ACCESS)
    assert got["exp"] - got["iat"] == signed.expires_in == 300
    assert got["nbf"] == got["iat"] == int(signed.issued_at.timestamp())
    assert signed.issued_at.utcoffset().total_seconds() == 0
    assert abs(got["iat"] - time.time()) < 5
    other = token_verify(token=token_sign(subject="alice", audience=AUD, access=ACCESS).token, audience=AUD)
    assert other["jti"] != got["jti"] and len(str(got["jti"])) >= 16


def test_anonymous_subject_and_empty_grants_are_allowed(keys_dir):
    grants = [{"type": "repository", "name": "acme/app", "actions": []}]
    got = token_verify(token=token_sign(subject="", audience=AUD, access=grants).token, audience=AUD)
    assert got["sub"] == "" and got["access"] == grants


def test_ttl_comes_from_settings_and_is_bounded(keys_dir, settings):
    settings.GATEWAY_TOKEN_TTL_SECONDS = 120
    assert token_sign(subject="a", audience=AUD, access=[]).expires_in == 120
    assert token_sign(subject="a", audience=AUD, access=[], expires_in=3600).expires_in == 3600
    for bad in (59, 3601, 0, True, 300.0):
        with pytest.raises(ValueError, match="60 to 3600"):
            token_sign(subject="a", audience=AUD, access=[], expires_in=bad)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"audience": ""}, "audience"),
        ({"access": {"type": "repository"}}, "must be a list"),
        ({"access": [{"type": "repository", "name": "a", "actions": "pull"}]}, r"access\[0\].actions"),
        ({"access": [{"type": "", "name": "a", "actions": []}]}, r"access\[0\].type"),
        ({"access": [{"type": "repository", "actions": []}]}, r"access\[0\].name"),
    ],
)
def test_sign_refuses_bad_arguments(keys_dir, kwargs, msg):
    args = {"subject": "a", "audience": AUD, "access": ACCESS, **kwargs}
    with pytest.raises(ValueError, match=msg):
        token_sign(**args)


def test_generated_key_file_dir_modes_name_and_kid(keys_dir):
    token_sign(subject="a", audience=AUD, access=[])
    kid = token_key_list()[0].kid
    files = list(keys_dir.glob("*.pem"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    stamp, _, rest = files[0].name.partition("-")
    assert len(stamp) == len("20260101T000000000000Z") and stamp.endswith("Z") and rest == kid[:8] + ".pem"
    # RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
    key = serialization.load_pem_private_key(files[0].read_bytes(), password=None)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    assert kid == b64(hashlib.sha256(canonical.encode()).digest())
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_rotation_old_tokens_verify_until_their_key_is_retired(keys_dir):
    old = token_sign(subject="alice", audience=AUD, access=ACCESS).token
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = token_key_create()
    assert new_kid != old_kid
    assert [(k.kid, k.signing) for k in token_key_list()] == [(old_kid, False), (new_kid, True)]
    new = token_sign(subject="alice", audience=AUD, access=ACCESS).token
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    assert token_verify(token=old, audience=AUD)["sub"] == "alice"  # the previous key still verifies
    token_key_retire(kid=old_kid)
    with pytest.raises(InvalidToken, match="unknown key"):
        token_verify(token=old, audience=AUD)
    assert token_verify(token=new, audience=AUD)["sub"] == "alice"
    assert [k.kid for k in token_key_list()] == [new_kid]


def test_retire_refuses_the_only_key_and_unknown_kids(keys_dir):
    token_sign(subject="a", audience=AUD, access=[])
    (only,) = token_key_list()
    with pytest.raises(Conflict, match="only signing key"):
        token_key_retire(kid=only.kid)
    with pytest.raises(NotFound, match="No token signing key"):
        token_key_retire(kid="nope")
    assert only.path.exists()


def test_retiring_the_signing_key_hands_signing_to_the_next_newest(keys_dir):
    first = token_key_create()
    second = token_key_create()
    token_key_retire(kid=second)
    assert jwt.get_unverified_header(token_sign(subject="a", audience=AUD, access=[]).token)["kid"] == first


def test_a_key_created_by_another_process_is_picked_up(keys_dir, monkeypatch):
    old = token_sign(subject="a", audience=AUD, access=[]).token
    r = manage("token_key_create", GATEWAY_TOKEN_KEYS_DIR=str(keys_dir))
    assert r.returncode == 0, r.stderr
    new_kid = r.stdout.strip()
    time.sleep(1.1)  # an unknown kid makes a process look again, at most once a second
    assert token_verify(token=forge(keys_dir, sub="bob"), audience=AUD)["sub"] == "bob"
    monkeypatch.setattr(token_keys, "RESCAN_SECONDS", 0.0)
    assert jwt.get_unverified_header(token_sign(subject="a", audience=AUD, access=[]).token)["kid"] == new_kid
    assert token_verify(token=old, audience=AUD)


def test_tampered_claims_fail_the_signature(keys_dir):
    token = token_sign(
        subject="alice", audience=AUD, access=[{"type": "repository", "name": "acme/app", "actions": ["pull"]}]
    ).token
    header, payload, signature = token.split(".")
    for change in ({"access": ACCESS}, {"sub": "root"}, {"exp": int(time.time()) + 86400}):
        forged = {**json.loads(unb64(payload)), **change}
        tampered = ".".join([header, b64(json.dumps(forged).encode()), signature])
        with pytest.raises(InvalidToken, match="signature"):
            token_verify(token=tampered, audience=AUD)
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    with pytest.raises(InvalidToken):
        token_verify(token=".".join([header, payload, flipped]), audience=AUD)


def test_alg_none_is_refused(keys_dir):
    token_sign(subject="a", audience=AUD, access=[])
    kid = token_key_list()[0].kid
    unsigned = jwt.encode(claims(), key=None, algorithm="none", headers={"kid": kid})
    with pytest.raises(InvalidToken, match="'none' is not accepted"):
        token_verify(token=unsigned, audience=AUD)
    handmade = ".".join([b64(json.dumps({"alg": "none", "kid": kid}).encode()), b64(json.dumps(claims()).encode()), ""])
    with pytest.raises(InvalidToken, match="not accepted"):
        token_verify(token=handmade, audience=AUD)


def test_hs256_with_the_public_key_as_secret_is_refused(keys_dir):
    token_sign(subject="a", audience=AUD, access=[])
    key = token_key_list()[0]
    public_pem = key_public_pem(key.path)
    header = b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims(access=ACCESS)).encode())
    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="'HS256' is not accepted"):
        token_verify(token=f"{header}.{body}.{b64(mac)}", audience=AUD)


def key_public_pem(path) -> bytes:
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_expiry_is_exact_and_nbf_iat_have_30s_leeway(keys_dir):
    token_sign(subject="a", audience=AUD, access=[])
    now = int(time.time())
    with pytest.raises(InvalidToken, match="expired"):
        token_verify(token=forge(keys_dir, iat=now - 400, nbf=now - 400, exp=now - 100), audience=AUD)
    with pytest.raises(InvalidToken, match="expired"):
        token_verify(token=forge(keys_dir, iat=now - 300, nbf=now - 300, exp=now - 5), audience=AUD)  # no leeway on exp
    assert token_verify(token=forge(keys_dir, iat=now + 20, nbf=now + 20, exp=now + 300), audience=AUD)
    with pytest.raises(InvalidToken, match="not valid yet"):
        token_verify(token=forge(keys_dir, nbf=now + 90, exp=now + 300), audience=AUD)
    with pytest.raises(InvalidToken, match="not valid yet"):
        token_verify(token=forge(keys_dir, iat=now + 90, exp=now + 300), audience=AUD)
    with pytest.raises(InvalidToken, match="lifetime"):
        token_verify(token=forge(keys_dir, exp=now + 86400), audience=AUD)


def test_wrong_audience_and_issuer_are_refused(keys_dir):
    token = token_sign(subject="a", audience=AUD, access=ACCESS).token
    with pytest.raises(InvalidToken, match="another service"):
        token_verify(token=token, audience="other.example.test")
    with pytest.raises(InvalidToken, match="another service"):
        token_verify(token=forge(keys_dir, aud=[AUD]), audience=AUD)
    with pytest.raises(InvalidToken, match="issued by someone else"):
        token_verify(token=forge(keys_dir, iss="https://evil.example"), audience=AUD)


def test_unknown_kid_is_refused(keys_dir):
    token_sign(subject="a", audience=AUD, access=[])
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": token_keys.key_thumbprint(stranger.public_key())})
    with pytest.raises(InvalidToken, match="unknown key"):
        token_verify(token=token, audience=AUD)
    # A stranger's key claiming our kid fails on the signature.
    token = jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": token_key_list()[0].kid})
    with pytest.raises(InvalidToken, match="signature"):
        token_verify(token=token, audience=AUD)
    no_kid = jwt.encode(claims(), signing_key(keys_dir)[0], algorithm="ES256")
    with pytest.raises(InvalidToken, match="no key id"):
        token_verify(token=no_kid, audience=AUD)


@pytest.mark.parametrize(
    "change,msg",
    [
        ({"drop": ("access",)}, "lacks the 'access' claim"),
        ({"drop": ("sub",)}, "lacks the 'sub' claim"),
        ({"drop": ("exp",)}, "lacks the 'exp' claim"),
        ({"drop": ("jti",)}, "lacks the 'jti' claim"),
        ({"access": "repository:acme/app:pull"}, "must be a list"),
        ({"access": [{"type": "repository", "name": "acme/app", "actions": "pull"}]}, "actions"),
        ({"access": [["repository", "acme/app", ["pull"]]]}, "must be an object"),
        ({"access": [{"type": "repository", "name": "acme/app", "actions": [1]}]}, "actions"),
        ({"exp": "tomorrow"}, "must be numbers"),
        ({"sub": 7}, "sub and jti"),
    ],
)
def test_bad_claim_shapes_are_refused(keys_dir, change, msg):
    token_sign(subject="a", audience=AUD, access=[])
    with pytest.raises(InvalidToken, match=msg):
        token_verify(token=forge(keys_dir, **change), audience=AUD)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "x" * 20000, "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln"])
def test_malformed_tokens_are_refused(keys_dir, token):
    token_sign(subject="a", audience=AUD, access=[])
    with pytest.raises(InvalidToken):
        token_verify(token=token, audience=AUD)


def test_critical_header_extensions_are_refused(keys_dir):
    token_sign(subject="a", audience=AUD, access=[])
    key, kid = signing_key(keys_dir)
    header = b64(json.dumps({"alg": "ES256", "kid": kid, "crit": ["x-ours"], "x-ours": 1}).encode())
    body = b64(json.dumps(claims()).encode())
    good = jwt.encode(claims(), key, algorithm="ES256", headers={"kid": kid})
    with pytest.raises(InvalidToken):  # PyJWT or we refuse a critical extension nobody understands
        token_verify(token=f"{header}.{body}.{good.split('.')[2]}", audience=AUD)


def test_without_autocreate_an_empty_directory_is_a_configuration_error(settings, tmp_path):
    settings.GATEWAY_TOKEN_KEYS_AUTOCREATE = False
    settings.GATEWAY_TOKEN_KEYS_DIR = tmp_path / "missing"
    token_keys._forget_keys()
    with pytest.raises(ImproperlyConfigured, match="GATEWAY_TOKEN_KEYS_DIR .* does not exist"):
        token_sign(subject="a", audience=AUD, access=[])
    (tmp_path / "missing").mkdir()
    with pytest.raises(ImproperlyConfigured, match="GATEWAY_TOKEN_KEYS_DIR .* holds no signing key"):
        token_sign(subject="a", audience=AUD, access=[])
    assert not list((tmp_path / "missing").iterdir())  # nothing generated
    with pytest.raises(ImproperlyConfigured, match="GATEWAY_TOKEN_KEYS_DIR .* holds no signing key"):
        token_key_list()
    settings.GATEWAY_TOKEN_KEYS_DIR = None
    with pytest.raises(ImproperlyConfigured, match="GATEWAY_TOKEN_KEYS_DIR must be set"):
        token_sign(subject="a", audience=AUD, access=[])
    token_keys._forget_keys()


def test_a_key_that_is_not_p256_is_a_configuration_error_naming_the_file(keys_dir):
    keys_dir.mkdir(mode=0o700)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = keys_dir / "20250101T000000000000Z-rsa.pem"
    path.write_bytes(
        rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(ImproperlyConfigured, match="rsa.pem is not an EC P-256 private key"):
        token_sign(subject="a", audience=AUD, access=[])
    path.write_text("not a key")
    with pytest.raises(ImproperlyConfigured, match="rsa.pem is not an unencrypted PEM private key"):
        token_sign(subject="a", audience=AUD, access=[])


def test_create_refuses_when_an_existing_file_would_outrank_the_new_key(keys_dir):
    token_key_create()
    stray = next(keys_dir.glob("*.pem")).read_bytes()
    (keys_dir / "zz-operator-key.pem").write_bytes(stray)
    with pytest.raises(Conflict, match="sorts after the new key"):
        token_key_create()
    assert len(list(keys_dir.glob("*.pem"))) == 2


# --- key ids on a command line ------------------------------------------------------------------------

# A throwaway test key whose RFC 7638 thumbprint starts with '-' (1 key in 64 has one), as a key
# made outside `token_key_create` (openssl, an older Wharf) may.
DASH_KID = "-T-QzSZh1cdnh2bSMU76IvURiDSvZm-rfCmiBJlxy2c"
DASH_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNY8lnIUWnABHa9v7
M3Dlrzku7MnXJzsbk4XndGdf8iOhRANCAARCzGUIhReJvc+VEHMt8UfsExBOtklk
d1XnER9ZyxTQmhCYHwWZoB3aze8UlYN3NulTK0P3rpxHC0ESSdeVXKcN
-----END PRIVATE KEY-----
"""


def test_generated_key_ids_never_start_with_a_dash():
    # Unfiltered, 640 keys hold about 10 such kids; the chance that none does is 4e-5.
    kids = [token_keys._generate_key()[1] for _ in range(640)]
    assert not [k for k in kids if k.startswith("-")]
    assert all(len(k) == 43 for k in kids)  # still the unpadded base64url SHA-256 thumbprint


def test_a_key_id_starting_with_a_dash_is_accepted_and_retired_after_double_dash(keys_dir):
    keys_dir.mkdir(mode=0o700)
    dash = keys_dir / "20200101T000000000000Z--T-QzSZh.pem"
    dash.write_bytes(DASH_PEM)
    dash.chmod(0o600)
    assert token_keys.key_thumbprint(serialization.load_pem_private_key(DASH_PEM, password=None).public_key()) == DASH_KID
    signed = token_sign(subject="a", audience=AUD, access=[])
    assert jwt.get_unverified_header(signed.token)["kid"] == DASH_KID and token_verify(token=signed.token, audience=AUD)
    newer = token_key_create()
    r = command("token_key_retire", DASH_KID)
    assert r.returncode != 0 and "the following arguments are required: kid" in r.stderr  # argparse took it for options
    r = command("token_key_retire", "--", DASH_KID)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"retired {DASH_KID}"
    assert not dash.exists() and [k.kid for k in token_key_list()] == [newer]
