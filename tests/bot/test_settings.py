"""Settings: one frozen dataclass read from KLUBB_* and TWILIO_* variables; errors name them."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.cli.main import main
from bot.settings import DEV_AUTH_TOKEN, Settings, SettingsError, check_data_dir


class TestDefaults:
    def test_an_empty_environment_gives_a_laptop_setup(self) -> None:
        """With nothing set: port 8080, SQLite, the console gateway, the public URL on 8080."""
        settings = Settings.from_env({})
        assert settings.port == 8080
        assert make_url(settings.database_url).get_backend_name() == "sqlite"
        assert settings.gateway == "console"
        assert settings.public_url == "http://127.0.0.1:8080"
        assert settings.host == "127.0.0.1"
        assert settings.twilio_auth_token == DEV_AUTH_TOKEN
        assert settings.console_outbox is None
        assert settings.run_scheduler is True

    def test_the_public_url_follows_the_port(self) -> None:
        """Without KLUBB_PUBLIC_URL the public URL is the loopback address on KLUBB_PORT."""
        settings = Settings.from_env({"KLUBB_PORT": "9123"})
        assert settings.port == 9123
        assert settings.public_url == "http://127.0.0.1:9123"

    def test_an_explicit_public_url_loses_its_trailing_slash(self) -> None:
        """KLUBB_PUBLIC_URL wins over the port, without a trailing slash (signatures use it)."""
        settings = Settings.from_env(
            {"KLUBB_PORT": "9123", "KLUBB_PUBLIC_URL": "https://klubb.example.com/"}
        )
        assert settings.public_url == "https://klubb.example.com"

    def test_each_variable_reaches_its_field(self) -> None:
        """The database URL, outbox file and scheduler switch are read from their variables."""
        settings = Settings.from_env(
            {
                "KLUBB_DATABASE_URL": " postgresql+asyncpg://u@db/klubb ",
                "KLUBB_CONSOLE_OUTBOX": "/tmp/sms.jsonl",
                "KLUBB_SCHEDULER": "off",
                "KLUBB_GATEWAY": " Console ",
            }
        )
        assert settings.database_url == "postgresql+asyncpg://u@db/klubb"
        assert settings.console_outbox == Path("/tmp/sms.jsonl")
        assert settings.run_scheduler is False
        assert settings.gateway == "console"

    def test_settings_are_frozen(self) -> None:
        """Settings can't be changed in place; `with_` makes a changed copy."""
        settings = Settings.from_env({})
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.port = 1  # type: ignore[misc]
        assert settings.with_(port=1).port == 1
        assert settings.port == 8080


class TestTwilioToken:
    def test_the_token_is_used_when_set(self) -> None:
        """TWILIO_AUTH_TOKEN, stripped, is the token webhooks are checked with."""
        settings = Settings.from_env({"TWILIO_AUTH_TOKEN": " s3cret \n"})
        assert settings.twilio_auth_token == "s3cret"

    @pytest.mark.parametrize("value", ["", "   "])
    def test_a_blank_token_falls_back_to_the_dev_token(self, value: str) -> None:
        """A blank TWILIO_AUTH_TOKEN counts as unset: the laptop's dev token."""
        assert Settings.from_env({"TWILIO_AUTH_TOKEN": value}).twilio_auth_token == DEV_AUTH_TOKEN


class TestErrors:
    @pytest.mark.parametrize("value", ["eighty", "80.5", "8o8o"])
    def test_a_port_that_is_not_a_number_names_klubb_port(self, value: str) -> None:
        """KLUBB_PORT that is not a whole number raises SettingsError naming it and the value."""
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"KLUBB_PORT": value})
        assert "KLUBB_PORT" in str(raised.value)
        assert value in str(raised.value)

    @pytest.mark.parametrize("value", ["twilio-classic", "smtp", "carrier-pigeon"])
    def test_an_unknown_gateway_names_klubb_gateway(self, value: str) -> None:
        """An unknown KLUBB_GATEWAY raises SettingsError naming the variable and the choices."""
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"KLUBB_GATEWAY": value})
        assert "KLUBB_GATEWAY" in str(raised.value)
        assert "console" in str(raised.value)

    @pytest.mark.parametrize("value", ["70000", "-1"])
    def test_a_port_out_of_range_names_klubb_port(self, value: str) -> None:
        """A KLUBB_PORT that no socket can bind raises SettingsError naming it."""
        with pytest.raises(SettingsError, match="KLUBB_PORT"):
            Settings.from_env({"KLUBB_PORT": value})

    def test_an_unknown_log_level_names_klubb_log_level(self) -> None:
        """An unknown KLUBB_LOG_LEVEL raises SettingsError naming it."""
        with pytest.raises(SettingsError, match="KLUBB_LOG_LEVEL"):
            Settings.from_env({"KLUBB_LOG_LEVEL": "verbose"})


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("KLUBB_PORT", "port"),
        ("TWILIO_AUTH_TOKEN", "twilio_auth_token"),
        ("KLUBB_CONSOLE_OUTBOX", "console_outbox"),
        ("KLUBB_DATABASE_URL", "database_url"),
        ("KLUBB_PUBLIC_URL", "public_url"),
        ("KLUBB_HOST", "host"),
        ("KLUBB_LOG_LEVEL", "log_level"),
        ("KLUBB_SECRET_KEY", "secret_key"),
        ("KLUBB_DATA_DIR", "data_dir"),
    ],
)
def test_an_empty_variable_counts_as_unset(variable: str, field: str) -> None:
    """A variable set to the empty string (as `KLUBB_X=` in a compose file) means its default."""
    assert getattr(Settings.from_env({variable: ""}), field) == getattr(
        Settings.from_env({}), field
    )


class TestSecretKey:
    KEY = "k" * 32

    def test_it_is_read_and_kept_out_of_repr(self) -> None:
        """KLUBB_SECRET_KEY encrypts admin sessions; settings printed in a log don't show it."""
        settings = Settings.from_env({"KLUBB_SECRET_KEY": self.KEY})
        assert settings.secret_key == self.KEY
        assert self.KEY not in repr(settings)

    def test_unset_it_is_none(self) -> None:
        """Unset, the app makes a key per process (and says so: sessions end at a restart)."""
        assert Settings.from_env({}).secret_key is None

    def test_a_short_key_names_the_variable(self) -> None:
        with pytest.raises(SettingsError, match="KLUBB_SECRET_KEY must be at least 32"):
            Settings.from_env({"KLUBB_SECRET_KEY": "too-short"})


class TestDataDir:
    def test_unset_it_is_a_folder_in_the_temporary_directory(self) -> None:
        """As before it was a setting: a laptop's `make run` needs nothing set."""
        settings = Settings.from_env({})
        assert settings.data_dir == Path(tempfile.gettempdir()) / "klubb"
        assert settings.imports_dir == settings.data_dir / "imports"

    def test_it_is_read_from_klubb_data_dir(self) -> None:
        settings = Settings.from_env({"KLUBB_DATA_DIR": " /var/lib/klubb "})
        assert settings.data_dir == Path("/var/lib/klubb")
        assert settings.imports_dir == Path("/var/lib/klubb/imports")

    def test_the_check_makes_the_folders(self, tmp_path: Path) -> None:
        """A folder not there yet (systemd's StateDirectory= makes only the top one) is made,
        its imports folder private to Klubb's user."""
        settings = Settings.from_env({"KLUBB_DATA_DIR": str(tmp_path / "state" / "klubb")})
        check_data_dir(settings)
        assert settings.imports_dir.is_dir()
        assert settings.imports_dir.stat().st_mode & 0o077 == 0
        assert list(settings.imports_dir.iterdir()) == []
        check_data_dir(settings)  # and again, on a restart

    def test_a_folder_that_cant_be_made_names_the_variable(self, tmp_path: Path) -> None:
        """Under a file, say (a permission can't be shown as root, whom none stops)."""
        (tmp_path / "a-file").write_text("")
        settings = Settings.from_env({"KLUBB_DATA_DIR": str(tmp_path / "a-file" / "klubb")})
        with pytest.raises(SettingsError) as raised:
            check_data_dir(settings)
        assert str(raised.value).startswith(f"KLUBB_DATA_DIR {tmp_path}/a-file/klubb can't be used")
        assert "Not a directory" in str(raised.value)

    def test_klubb_serve_refuses_to_start_on_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 2 and why on stderr, before anything else is asked (the database too)."""
        (tmp_path / "a-file").write_text("")
        monkeypatch.setenv("KLUBB_DATA_DIR", str(tmp_path / "a-file"))
        monkeypatch.setenv("KLUBB_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:1/x")
        assert main(["serve"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"klubb serve: KLUBB_DATA_DIR {tmp_path}/a-file can't be used")
        assert "Traceback" not in err


class TestDatabaseUrl:
    """KLUBB_DATABASE_URL is read by store.database.database_url, as every command reads it."""

    @pytest.mark.parametrize("value", ["not a url", "klubb.db", "postgresql://u:hunter2@h:x/db"])
    def test_what_is_no_url_is_refused_without_its_password(self, value: str) -> None:
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"KLUBB_DATABASE_URL": value})
        said = str(raised.value)
        assert said.startswith("KLUBB_DATABASE_URL is not a database URL: ")
        assert "sqlite:///FILE or postgresql://USER@HOST/NAME" in said
        assert "hunter2" not in said

    @pytest.mark.parametrize("value", ["mysql://u@localhost/db", "oracle://u:hunter2@h/db"])
    def test_a_database_klubb_does_not_run_on_names_the_supported_schemes(self, value: str) -> None:
        """A mysql:// URL was once taken for PostgreSQL by `klubb migrate`: refused by all."""
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"KLUBB_DATABASE_URL": value})
        said = str(raised.value)
        assert "which Klubb does not run on: the supported schemes are sqlite and postgresql" in (
            said
        )
        assert "hunter2" not in said

    def test_postgres_is_read_as_postgresql(self) -> None:
        """libpq's postgres:// spelling: one reading, kept as postgresql:// for every command."""
        settings = Settings.from_env({"KLUBB_DATABASE_URL": "postgres://u:p%40ss@db:5433/klubb"})
        assert settings.database_url == "postgresql://u:p%40ss@db:5433/klubb"

    def test_a_port_out_of_range_is_refused(self) -> None:
        with pytest.raises(SettingsError, match="has the port 99999, not between 1 and 65535"):
            Settings.from_env({"KLUBB_DATABASE_URL": "postgresql://u@db:99999/klubb"})

    def test_a_comment_on_its_line_is_named(self) -> None:
        with pytest.raises(SettingsError, match="a comment on the same line"):
            Settings.from_env(
                {"KLUBB_DATABASE_URL": "postgresql://u:hunter2@db/klubb   # production"}
            )

    def test_a_sqlite_path_with_a_space_is_kept(self) -> None:
        url = "sqlite:////srv/my klubb/k.db"
        assert Settings.from_env({"KLUBB_DATABASE_URL": url}).database_url == url


class TestPublicUrl:
    @pytest.mark.parametrize(
        "value",
        ["https://klubb.example.no   # what Twilio signs", "https://klubb.example.no #", "a b"],
    )
    def test_a_space_is_refused_as_a_comment_systemd_kept(self, value: str) -> None:
        """systemd's EnvironmentFile keeps an inline comment in the value: every webhook would
        then be refused with 403 (its signature is over another URL)."""
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"KLUBB_PUBLIC_URL": value})
        said = str(raised.value)
        assert said.startswith("KLUBB_PUBLIC_URL contains a space: a comment on the same line?")
        assert "systemd keeps it as part of the value" in said

    @pytest.mark.parametrize(
        "value", ["notaurl", "ftp://x", "klubb.example.no", "https://", "http://h:port"]
    )
    def test_what_is_no_absolute_http_url_is_refused(self, value: str) -> None:
        with pytest.raises(SettingsError, match="must be an absolute http:// or https://"):
            Settings.from_env({"KLUBB_PUBLIC_URL": value})

    @pytest.mark.parametrize("value", ["https://k.example.no/?a=1", "https://k.example.no#x"])
    def test_a_query_or_fragment_is_refused(self, value: str) -> None:
        with pytest.raises(SettingsError, match="no query"):
            Settings.from_env({"KLUBB_PUBLIC_URL": value})

    @pytest.mark.parametrize(
        "value", ["http://127.0.0.1:8080", "https://klubb.example.no/klubb", "https://[::1]:9"]
    )
    def test_an_http_url_with_a_host_is_kept(self, value: str) -> None:
        assert Settings.from_env({"KLUBB_PUBLIC_URL": value}).public_url == value


class TestScheduler:
    @pytest.mark.parametrize("value", ["on", "ON", "1", "true", "Yes", " on "])
    def test_on(self, value: str) -> None:
        assert Settings.from_env({"KLUBB_SCHEDULER": value}).run_scheduler is True

    @pytest.mark.parametrize("value", ["off", "Off", "0", "false", "NO"])
    def test_off(self, value: str) -> None:
        assert Settings.from_env({"KLUBB_SCHEDULER": value}).run_scheduler is False

    @pytest.mark.parametrize("value", ["maybe", "of", "2", "disabled"])
    def test_anything_else_is_refused(self, value: str) -> None:
        """`maybe` was silently on."""
        with pytest.raises(SettingsError, match=f"KLUBB_SCHEDULER must be on or off .*{value!r}"):
            Settings.from_env({"KLUBB_SCHEDULER": value})
