"""Login, the TOTP second factor, lockout, logout and session timeouts, over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from casemgr.auth import totp
from casemgr.clock import ManualClock
from tests.conftest import PASSWORD, World, audit_rows, totp_code


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


def bearer(token: str, purpose: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if purpose:
        headers["X-Purpose"] = purpose
    return headers


async def full_login(client: httpx.AsyncClient, clock: ManualClock, username: str) -> str:
    pending = await login(client, username)
    assert pending.status_code == 200, pending.text
    assert pending.json()["mfa"] == "pending"
    verified = await client.post(
        "/auth/totp/verify", json={"code": totp_code(clock)}, headers=bearer(pending.json()["token"])
    )
    assert verified.status_code == 200, verified.text
    token: str = verified.json()["token"]
    return token


async def test_password_then_totp_gives_a_full_session_and_both_steps_are_audited(
    client: httpx.AsyncClient, clock: ManualClock, world: World, owner: asyncpg.Connection
) -> None:
    off1 = world.accounts["off1"]
    pending = await login(client, off1.username)
    assert pending.json()["mfa"] == "pending"
    # The password alone opens nothing but the second-factor routes.
    denied = await client.get("/cases", headers=bearer(pending.json()["token"]))
    assert denied.status_code == 403
    assert "second factor" in denied.json()["detail"]
    verified = await client.post(
        "/auth/totp/verify", json={"code": totp_code(clock)}, headers=bearer(pending.json()["token"])
    )
    assert verified.status_code == 200
    token = verified.json()["token"]
    assert token != pending.json()["token"]  # a new token once the second factor is passed
    assert (await client.get("/cases", headers=bearer(token))).status_code == 200
    # The pending token is gone.
    gone = await client.get("/auth/me", headers=bearer(pending.json()["token"]))
    assert gone.status_code == 401
    [password_row] = await audit_rows(owner, pending.headers["x-request-id"])
    assert (password_row["action"], password_row["outcome"], password_row["actor_id"]) == (
        "auth.login",
        "success",
        off1.id,
    )
    [totp_row] = await audit_rows(owner, verified.headers["x-request-id"])
    assert (totp_row["action"], totp_row["outcome"]) == ("auth.totp_verify", "success")


async def test_an_account_without_a_second_factor_must_enrol_before_anything_else(
    client: httpx.AsyncClient, clock: ManualClock, world: World, owner: asyncpg.Connection
) -> None:
    off2 = world.accounts["off2"]
    await owner.execute(
        "UPDATE accounts SET totp_secret = NULL, totp_confirmed_at = NULL WHERE id = $1", off2.id
    )
    first = await login(client, off2.username)
    assert first.json()["mfa"] == "enrol"
    token = first.json()["token"]
    assert (await client.get("/cases", headers=bearer(token))).status_code == 403
    enrolment = await client.post("/auth/totp/enrol", headers=bearer(token))
    assert enrolment.status_code == 200
    secret = enrolment.json()["secret"]
    assert enrolment.json()["otpauth_uri"].startswith("otpauth://totp/")
    # The secret is stored sealed, never in clear.
    stored = await owner.fetchval("SELECT totp_secret FROM accounts WHERE id = $1", off2.id)
    assert secret.encode() not in stored
    verified = await client.post(
        "/auth/totp/verify", json={"code": totp.code_at(secret, clock.now())}, headers=bearer(token)
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["mfa"] == "passed"
    assert await owner.fetchval("SELECT totp_confirmed_at IS NOT NULL FROM accounts WHERE id = $1", off2.id)
    # Enrolled now: a later login asks for the code, not for enrolment.
    clock.advance(timedelta(seconds=30))
    assert (await login(client, off2.username)).json()["mfa"] == "pending"


async def test_a_totp_code_is_accepted_once(
    client: httpx.AsyncClient, clock: ManualClock, world: World
) -> None:
    username = world.accounts["sup_d1"].username
    code = totp_code(clock)
    first = await login(client, username)
    ok = await client.post("/auth/totp/verify", json={"code": code}, headers=bearer(first.json()["token"]))
    assert ok.status_code == 200
    second = await login(client, username)
    replay = await client.post(
        "/auth/totp/verify", json={"code": code}, headers=bearer(second.json()["token"])
    )
    assert replay.status_code == 401


async def test_five_failures_in_fifteen_minutes_lock_the_account_until_an_admin_unlocks_it(
    client: httpx.AsyncClient,
    clock: ManualClock,
    world: World,
    owner: asyncpg.Connection,
    login_as: Any,
) -> None:
    off3 = world.accounts["off3"]
    failures = [await login(client, off3.username, "wrong password!!") for _ in range(5)]
    assert [r.status_code for r in failures] == [401] * 5
    reasons = [(await audit_rows(owner, r.headers["x-request-id"]))[0]["reason"] for r in failures]
    assert reasons == ["wrong_password"] * 4 + ["wrong_password_locked"]
    # The right password no longer helps.
    locked = await login(client, off3.username)
    assert locked.status_code == 423
    assert "administrator" in locked.json()["detail"]
    [row] = await audit_rows(owner, locked.headers["x-request-id"])
    assert (row["outcome"], row["reason"]) == ("failure", "account_locked")
    # An admin of the account's subtree unlocks it.
    unlocked = await client.post(f"/accounts/{off3.id}/unlock", headers=await login_as("admin"))
    assert unlocked.status_code == 200
    assert unlocked.json()["locked_at"] is None
    assert (await login(client, off3.username)).status_code == 200


async def test_failures_older_than_the_window_do_not_count(
    client: httpx.AsyncClient, world: World, owner: asyncpg.Connection
) -> None:
    off2 = world.accounts["off2"]
    await owner.executemany(
        "INSERT INTO login_failures (account_id, at) VALUES ($1, now() - interval '16 minutes')",
        [(off2.id,)] * 4,
    )
    response = await login(client, off2.username, "wrong password!!")
    assert response.status_code == 401
    assert (await login(client, off2.username)).status_code == 200


async def test_wrong_totp_codes_count_towards_the_lockout(client: httpx.AsyncClient, world: World) -> None:
    username = world.accounts["sup_d2"].username
    for _ in range(5):
        pending = await login(client, username)
        assert pending.status_code == 200
        wrong = await client.post(
            "/auth/totp/verify", json={"code": "000000"}, headers=bearer(pending.json()["token"])
        )
        assert wrong.status_code == 401
    assert (await login(client, username)).status_code == 423


async def test_an_unknown_username_fails_like_a_wrong_password_and_is_audited_without_a_name(
    client: httpx.AsyncClient, owner: asyncpg.Connection
) -> None:
    response = await login(client, "nobody.here", "whatever password")
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid username or password"
    [row] = await audit_rows(owner, response.headers["x-request-id"])
    assert (row["action"], row["outcome"], row["reason"], row["actor_id"]) == (
        "auth.login",
        "failure",
        "unknown_username",
        None,
    )
    assert "nobody.here" not in repr(dict(row))


async def test_logout_ends_the_session(client: httpx.AsyncClient, clock: ManualClock, world: World) -> None:
    token = await full_login(client, clock, world.accounts["off1"].username)
    assert (await client.post("/auth/logout", headers=bearer(token))).status_code == 204
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401


async def test_a_session_ends_after_thirty_idle_minutes_but_activity_keeps_it_alive(
    client: httpx.AsyncClient, clock: ManualClock, world: World
) -> None:
    token = await full_login(client, clock, world.accounts["off1"].username)
    for _ in range(3):
        clock.advance(timedelta(minutes=29))
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(minutes=30))
    expired = await client.get("/auth/me", headers=bearer(token))
    assert expired.status_code == 401
    assert "log in again" in expired.json()["detail"]


async def test_a_session_ends_twelve_hours_after_login_however_active(
    client: httpx.AsyncClient, clock: ManualClock, world: World
) -> None:
    token = await full_login(client, clock, world.accounts["off1"].username)
    for _ in range(28):  # 28 x 25 minutes = 11 h 40 min, a request every 25 minutes
        clock.advance(timedelta(minutes=25))
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(minutes=21))  # 12 h 01 min after login, idle only 21 minutes
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401


async def test_a_password_reset_by_an_admin_ends_the_accounts_sessions(
    client: httpx.AsyncClient, clock: ManualClock, world: World, login_as: Any
) -> None:
    token = await full_login(client, clock, world.accounts["off1"].username)
    reset = await client.post(
        f"/accounts/{world.accounts['off1'].id}/password",
        json={"new_password": "a brand new passphrase"},
        headers=await login_as("admin_d1"),
    )
    assert reset.status_code == 204
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401
    assert (await login(client, world.accounts["off1"].username, "a brand new passphrase")).status_code == 200


async def test_changing_ones_own_password_keeps_this_session_and_ends_the_others(
    client: httpx.AsyncClient, clock: ManualClock, world: World
) -> None:
    username = world.accounts["sup_d1"].username
    other = await full_login(client, clock, username)
    clock.advance(timedelta(seconds=30))
    this = await full_login(client, clock, username)
    changed = await client.post(
        "/auth/password",
        headers=bearer(this),
        json={"current_password": PASSWORD, "new_password": "another long passphrase"},
    )
    assert changed.status_code == 204
    assert (await client.get("/auth/me", headers=bearer(this))).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(other))).status_code == 401
    too_short = await client.post(
        "/auth/password",
        headers=bearer(this),
        json={"current_password": "another long passphrase", "new_password": "short"},
    )
    assert too_short.status_code == 422
    assert too_short.json()["errors"][0]["field"] == "new_password"
