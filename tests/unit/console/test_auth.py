"""The admin session: signed, expiring, bound to its CSRF token; the login compared whole."""

from __future__ import annotations

from pydantic import SecretStr

from worker.console.auth import MAX_REVOKED, AdminAuth

TOKEN = SecretStr("an-admin-token-of-32-characters!")


def auth(now: list[float]) -> AdminAuth:
    return AdminAuth(user="ops", token=TOKEN, ttl=60, now=lambda: now[0])


def test_a_session_reads_back_until_it_expires() -> None:
    clock = [1000.0]
    admin = auth(clock)
    cookie = admin.issue()
    session = admin.read(cookie)
    assert session is not None
    assert session.user == "ops"
    clock[0] += 61
    assert admin.read(cookie) is None


def test_a_tampered_or_foreign_session_is_refused() -> None:
    clock = [1000.0]
    admin = auth(clock)
    payload, signature = admin.issue().split(".")
    assert admin.read(f"{payload}x.{signature}") is None
    # Change the signature's first character: the last one may already be the replacement
    # (a random nonce made it "A" once in 64 runs) or carry only padding bits.
    tampered = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert admin.read(f"{payload}.{tampered}") is None
    assert admin.read("") is None
    other = AdminAuth(user="ops", token=SecretStr("another-token-of-32-characters!!"), ttl=60)
    assert other.read(admin.issue()) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    admin = auth([1000.0])
    first = admin.read(admin.issue())
    second = admin.read(admin.issue())
    assert first is not None
    assert second is not None
    assert admin.csrf_ok(first, admin.csrf_token(first))
    assert not admin.csrf_ok(second, admin.csrf_token(first))


def test_the_login_needs_both_user_and_token() -> None:
    admin = auth([1000.0])
    assert admin.check_login("ops", TOKEN.get_secret_value())
    assert not admin.check_login("root", TOKEN.get_secret_value())
    assert not admin.check_login("ops", TOKEN.get_secret_value()[:-1])


def test_a_logged_out_session_stays_out_and_others_stay_in() -> None:
    clock = [1000.0]
    admin = auth(clock)
    kept, other = admin.issue(), admin.issue()
    session = admin.read(kept)
    assert session is not None
    admin.revoke(session)
    assert admin.read(kept) is None
    assert admin.read(other) is not None


def test_a_revocation_is_remembered_until_the_session_expires() -> None:
    clock = [1000.0]
    admin = auth(clock)
    first = admin.read(admin.issue())
    assert first is not None
    admin.revoke(first)
    clock[0] += 61
    second = admin.read(admin.issue())
    assert second is not None
    admin.revoke(second)
    assert admin._revoked.keys() == {second.nonce}


def test_revocations_are_bounded_by_ending_every_older_session() -> None:
    clock = [1000.0]
    admin = auth(clock)
    older = admin.issue()
    for _ in range(MAX_REVOKED + 1):
        session = admin.read(admin.issue())
        assert session is not None
        admin.revoke(session)
    assert len(admin._revoked) <= MAX_REVOKED
    assert admin.read(older) is None
    clock[0] += 1
    assert admin.read(admin.issue()) is not None
