"""Pure logic without I/O: settings, sealing, TOTP, identity numbers, scope, field names."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casemgr.auth import totp
from casemgr.auth.principal import MfaState, Principal, Role
from casemgr.config import ConfigError, DataKey, app_url_from_owner_url, load_settings
from casemgr.crypto import Keyring, SealError
from casemgr.people.id_number import check_character, is_valid
from casemgr.web.problems import _field_name

KEY = "k1:" + base64.b64encode(bytes(range(32))).decode()
BASE_ENV = {
    "DATABASE_URL": "postgresql://owner@db:5432/casemgr",
    "REDIS_URL": "redis://r",
    "CASEMGR_DATA_KEYS": KEY,
}


class TestSettings:
    def test_the_application_connects_as_casemgr_app_unless_told_otherwise(self) -> None:
        settings = load_settings(BASE_ENV)
        assert settings.app_database_url == "postgresql://casemgr_app@db:5432/casemgr"
        explicit = load_settings({**BASE_ENV, "APP_DATABASE_URL": "postgresql://x@y/z"})
        assert explicit.app_database_url == "postgresql://x@y/z"

    def test_the_second_factor_can_be_switched_off_only_outside_production(self) -> None:
        with pytest.raises(ConfigError, match="CASEMGR_MFA_REQUIRED"):
            load_settings({**BASE_ENV, "CASEMGR_MFA_REQUIRED": "false"})
        demo = load_settings({**BASE_ENV, "CASEMGR_MFA_REQUIRED": "false", "CASEMGR_ENV": "demo"})
        assert not demo.mfa_required

    def test_the_consoles_time_zone_must_be_a_time_zone(self) -> None:
        assert load_settings(BASE_ENV).console_time_zone == "Asia/Shanghai"
        with pytest.raises(ConfigError, match="CASEMGR_CONSOLE_TIME_ZONE"):
            load_settings({**BASE_ENV, "CASEMGR_CONSOLE_TIME_ZONE": "Mars/Olympus"})

    def test_the_consoles_cookie_is_secure_unless_switched_off_outside_production(self) -> None:
        assert load_settings(BASE_ENV).console_cookie_secure
        with pytest.raises(ConfigError, match="CASEMGR_CONSOLE_COOKIE_SECURE"):
            load_settings({**BASE_ENV, "CASEMGR_CONSOLE_COOKIE_SECURE": "false"})
        demo = load_settings({**BASE_ENV, "CASEMGR_CONSOLE_COOKIE_SECURE": "false", "CASEMGR_ENV": "demo"})
        assert not demo.console_cookie_secure

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("DATABASE_URL", ""),
            ("CASEMGR_DATA_KEYS", "k1:short"),
            ("CASEMGR_PORT", "eighty"),
            ("CASEMGR_ENV", "staging"),
            ("CASEMGR_SESSION_IDLE_SECONDS", "0"),
        ],
    )
    def test_a_bad_setting_is_refused_with_its_name(self, name: str, value: str) -> None:
        with pytest.raises(ConfigError, match=name.split("_")[-1] if value else name):
            load_settings({**BASE_ENV, name: value})

    def test_ipv6_hosts_survive_the_user_swap(self) -> None:
        assert (
            app_url_from_owner_url("postgresql://o@[::1]:5432/d") == "postgresql://casemgr_app@[::1]:5432/d"
        )


class TestSealing:
    keyring = Keyring((DataKey(key_id="new", key=b"n" * 32), DataKey(key_id="old", key=b"o" * 32)))

    @given(st.binary(max_size=512))
    def test_a_sealed_value_opens_to_itself_in_its_place_only(self, value: bytes) -> None:
        sealed = self.keyring.seal(value, b"accounts.totp_secret:1")
        assert self.keyring.open(sealed, b"accounts.totp_secret:1") == value
        with pytest.raises(SealError):
            self.keyring.open(sealed, b"accounts.totp_secret:2")

    def test_values_sealed_with_a_retired_key_still_open_after_rotation(self) -> None:
        old_ring = Keyring((DataKey(key_id="old", key=b"o" * 32),))
        sealed = old_ring.seal(b"secret", b"aad")
        assert self.keyring.open(sealed, b"aad") == b"secret"
        assert self.keyring.seal(b"secret", b"aad")[1:4] == b"new"

    def test_an_altered_value_does_not_open(self) -> None:
        sealed = bytearray(self.keyring.seal(b"secret", b"aad"))
        sealed[-1] ^= 1
        with pytest.raises(SealError):
            self.keyring.open(bytes(sealed), b"aad")


class TestTotp:
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    now = datetime(2026, 11, 26, 12, 0, 10, tzinfo=UTC)

    def test_codes_of_this_and_the_neighbouring_steps_match_and_name_their_step(self) -> None:
        step = totp.matching_step(self.secret, totp.code_at(self.secret, self.now), self.now)
        assert step == int(self.now.timestamp()) // 30
        before = totp.code_at(self.secret, self.now - timedelta(seconds=30))
        assert totp.matching_step(self.secret, before, self.now) == step - 1
        too_old = totp.code_at(self.secret, self.now - timedelta(seconds=90))
        assert totp.matching_step(self.secret, too_old, self.now) is None

    @pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef"])
    def test_malformed_codes_never_match(self, code: str) -> None:
        assert totp.matching_step(self.secret, code, self.now) is None


class TestIdNumber:
    def test_the_gb11643_check_character(self) -> None:
        assert check_character("11010519491231002") == "X"
        assert is_valid("11010519491231002X")
        assert not is_valid("110105194912310021")

    @given(st.text(alphabet="0123456789", min_size=17, max_size=17))
    def test_exactly_one_check_character_is_valid(self, first17: str) -> None:
        valid = [c for c in "0123456789X" if is_valid(first17 + c)]
        assert valid == [check_character(first17)]


class TestScope:
    principal = Principal(
        account_id=1, role=Role.SUPERVISOR, org_unit_id=1, scope="n1.n2", session_id="s", mfa=MfaState.PASSED
    )

    @pytest.mark.parametrize(
        ("path", "inside"),
        [
            ("n1.n2", True),
            ("n1.n2.n7", True),
            ("n1.n20", False),
            ("n1", False),
            ("n3.n1.n2", False),
        ],
    )
    def test_a_scope_holds_its_own_subtree_and_nothing_else(self, path: str, inside: bool) -> None:
        assert self.principal.sees(path) is inside


@pytest.mark.parametrize(
    ("key", "message", "field"),
    [
        ("person", "Object contains unknown field `nickname`", "person.nickname"),
        (None, "Object contains unknown field `zzz`", "zzz"),
        ("data", "Object missing required field `program`", "program"),
        ("person.birth_date", "Invalid RFC3339 encoded date", "person.birth_date"),
        (None, "Expected `object`, got `array`", "body"),
    ],
)
def test_validation_problems_name_the_dotted_field(key: str | None, message: str, field: str) -> None:
    assert _field_name(key, message) == field


class TestNames:
    @pytest.mark.parametrize(
        ("name", "pinyin", "initials"),
        [
            ("张三", "zhangsan", "zs"),
            ("单田芳", "shantianfang", "stf"),  # 单 as a surname reads Shan
            ("曾国藩", "zengguofan", "zgf"),
            ("欧阳娜娜", "ouyangnana", "oynn"),
            ("尉迟恭", "yuchigong", "ycg"),
            ("Li Ming", "liming", "lm"),
            ("李 明", "liming", "lm"),
        ],
    )
    def test_names_romanise_to_pinyin_and_initials(self, name: str, pinyin: str, initials: str) -> None:
        from casemgr.people.names import romanise

        assert romanise(name) == (pinyin, initials)

    @given(st.text(max_size=30))
    def test_romanised_forms_are_lower_case_letters_and_digits_only(self, name: str) -> None:
        from casemgr.people.names import romanise

        pinyin, initials = romanise(name)
        assert pinyin == "".join(c for c in pinyin if c.isascii() and (c.islower() or c.isdigit()))
        assert len(initials) <= len(pinyin)
