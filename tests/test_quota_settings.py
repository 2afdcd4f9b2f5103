"""Three services' URLs and the quota settings: flags, environment, config files and their rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lf_bulk.errors import ConfigError, InvalidSetting
from lf_bulk.settings import Settings

from clihelp import expect, invoke


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("LF_BULK_"):
            monkeypatch.delenv(name)
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_each_environment_has_three_service_urls() -> None:
    prod = Settings(env="prod", partner_code="P1").remote_service_urls()
    assert prod == {
        "topup": "https://wx.linksfield.net/topup",
        "vshop": "https://wx.linksfield.net/vshop",
        "payment": "https://wx.linksfield.net/payment",
    }
    uat = Settings(env="uat", partner_code="P1").remote_service_urls()
    assert uat == {
        "topup": "https://wx.linksfield.net/topup_test",
        "vshop": "https://wx.linksfield.net/vshop_uat",
        "payment": "https://wx.linksfield.net/payment_uat",
    }


def test_base_url_alone_points_every_service_at_one_server_and_one_may_be_overridden() -> None:
    one = Settings(env="uat", partner_code="P1", base_url="http://127.0.0.1:8765")
    assert set(one.remote_service_urls().values()) == {"http://127.0.0.1:8765"}
    split = Settings(
        env="uat",
        partner_code="P1",
        base_url="http://127.0.0.1:8765",
        vshop_url="https://vshop.example/v",
    )
    assert split.remote_service_urls() == {
        "topup": "http://127.0.0.1:8765",
        "vshop": "https://vshop.example/v",
        "payment": "http://127.0.0.1:8765",
    }
    only_payment = Settings(env="prod", partner_code="P1", payment_url="https://pay.example")
    assert only_payment.remote_service_urls()["topup"] == "https://wx.linksfield.net/topup"
    assert only_payment.remote_service_urls()["payment"] == "https://pay.example"
    only_payment.validate()


def test_prod_refuses_a_plain_http_vshop_url_naming_it(tmp_path: Path) -> None:
    args = ["--env", "prod", "--partner-code", "P000270", "--home", str(tmp_path)]
    result = expect(invoke([*args, "--vshop-url", "http://vshop.example/v", "groups", "list"]), 1)
    assert "vshop URL http://vshop.example/v (from --vshop-url)" in result.stderr
    assert "--allow-insecure-http" in result.stderr


def test_a_malformed_payment_url_from_the_environment_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LF_BULK_PAYMENT_URL", "ftp://pay.example")
    args = ["--env", "uat", "--partner-code", "P1", "--home", str(tmp_path), "groups", "list"]
    result = expect(invoke(args), 2)
    assert "payment URL 'ftp://pay.example' (from LF_BULK_PAYMENT_URL)" in result.stderr
    assert "--payment-url" in result.stderr


def test_the_embedded_sandbox_refuses_a_vshop_url_and_names_where_it_came_from(
    tmp_path: Path,
) -> None:
    config = tmp_path / "lf.toml"
    config.write_text('vshop_url = "https://vshop.example"\n')
    result = expect(invoke(["--config", str(config), "--home", str(tmp_path), "groups", "list"]), 1)
    assert "vshop URL is set by config file" in result.stderr
    assert str(config) in result.stderr
    assert not (tmp_path / "sandbox.db").exists()  # nothing was started


def test_a_url_password_of_any_service_is_never_shown(tmp_path: Path) -> None:
    args = ["--env", "prod", "--partner-code", "P1", "--home", str(tmp_path)]
    url = "http://user:s3cretpass@vshop.example/v"
    result = expect(invoke([*args, "--vshop-url", url, "groups", "list"]), 1)
    assert "s3cretpass" not in result.stderr + result.stdout
    assert "vshop.example" in result.stderr


def write_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "lf.toml"
    config.write_text(text)
    return config


@pytest.mark.parametrize(
    ("line", "allowed"),
    [
        ("daily_quota = 1000", True),
        ("daily_quota = 5000", True),
        ("daily_quota = 5001", False),
        ("quota_reserve = 800", True),
        ("quota_reserve = 499", False),
    ],
)
def test_a_config_file_may_lower_the_quota_and_raise_the_reserve_never_the_reverse(
    tmp_path: Path, line: str, allowed: bool
) -> None:
    config = write_config(tmp_path, line + "\n")
    result = invoke(["--config", str(config), "--home", str(tmp_path), "runs", "list"])
    if allowed:
        expect(result, 0)
    else:
        expect(result, 1)
        key = line.split()[0]
        assert f"config file {config}: {key!r}" in result.stderr
        assert "on the command line" in result.stderr


def test_the_flags_may_set_either_way(tmp_path: Path) -> None:
    args = ["--home", str(tmp_path), "--daily-quota", "20000", "--quota-reserve", "0"]
    expect(invoke([*args, "runs", "list"]), 0)


def test_a_reserve_as_large_as_the_quota_is_bad_input_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LF_BULK_DAILY_QUOTA", "400")
    result = expect(invoke(["--home", str(tmp_path), "groups", "list"]), 2)
    assert "--quota-reserve 500 (from the default)" in result.stderr
    assert "--daily-quota 400 (from LF_BULK_DAILY_QUOTA)" in result.stderr
    with pytest.raises(InvalidSetting):
        Settings(daily_quota=10, quota_reserve=10).validate()
    Settings(daily_quota=10, quota_reserve=9).validate()


def test_the_quota_account_is_the_partner_code_at_one_server() -> None:
    prod = Settings(env="prod", partner_code="P1")
    assert prod.quota_identity() == "https://wx.linksfield.net/topup\nP1"
    served = Settings(env="uat", partner_code="P1", base_url="http://u:pw@127.0.0.1:8765")
    assert served.quota_identity() == "http://127.0.0.1:8765\nP1"
    assert Settings().quota_identity().startswith("sandbox\n")
    with pytest.raises(ConfigError):
        Settings(env="uat").quota_identity()  # no partner code: no account
