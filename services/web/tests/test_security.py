"""The security baseline: CSRF, headers, cookies, secrets, limits and error pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from srcflask import create_app
from srcflask.config import PLACEHOLDER_SECRET_KEY, ConfigError

from .conftest import login_as

PACKAGE = Path(__file__).resolve().parent.parent / "srcflask"


def csrf_token_from(page: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)


@pytest.fixture
def csrf_app(app_factory):
    return app_factory(WTF_CSRF_ENABLED=True)


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/auth/login", {"email": "a@example.org", "password": "whatever password"}),
        ("/auth/signup", {"name": "x"}),
        ("/auth/logout", {}),
        ("/admin/users/1/approve", {}),
        ("/admin/users/1/role", {"role": "admin", "confirm": "y"}),
        # The scan (bench/scan.py) leaves these out: they end the scanner's own session.
        ("/account/sessions/end-all", {}),
        ("/account/password", {"current_password": "x", "new_password": "y" * 12}),
    ],
)
def test_state_changes_without_a_csrf_token_are_refused(csrf_app, admin, url, data):
    client = csrf_app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    client.post(
        "/auth/login",
        data={
            "email": admin.email,
            "password": admin.password,
            "csrf_token": csrf_token_from(page),
        },
    )
    assert client.get("/admin/").status_code == 200  # really logged in

    response = client.post(url, data=data)

    assert response.status_code == 400
    assert "This form has expired or did not come from this site" in response.get_data(as_text=True)


def test_forms_with_the_token_work(csrf_app, make_user):
    account = make_user()
    client = csrf_app.test_client()
    token = csrf_token_from(client.get("/auth/login").get_data(as_text=True))
    response = client.post(
        "/auth/login",
        data={"email": account.email, "password": account.password, "csrf_token": token},
    )
    assert response.status_code == 303
    home = client.get("/sponsor/documents").get_data(as_text=True)
    logout = client.post("/auth/logout", data={"csrf_token": csrf_token_from(home)})
    assert logout.status_code == 303


def test_no_state_changes_on_get(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("admin.", "auth.")) and "GET" in rule.methods:
            assert not any(
                word in rule.rule
                for word in ("approve", "reject", "suspend", "reinstate", "logout", "role")
            ), rule


def test_security_headers_on_every_response(client, sponsor_client):
    for response in (
        client.get("/auth/login"),
        client.get("/healthz"),
        client.get("/nope"),
        sponsor_client.get("/sponsor/"),
        client.get("/static/css/app.css"),
    ):
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        script_src = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
        assert "unsafe-inline" not in script_src
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in client.get("/healthz").headers


def test_pages_have_no_inline_scripts_or_styles(client):
    for template in PACKAGE.joinpath("templates").rglob("*.html"):
        text = template.read_text()
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) is None, template
        assert " style=" not in text and "<style" not in text, template
        assert re.search(r"\son[a-z]+=", text) is None, template


def test_no_template_marks_data_safe():
    for template in PACKAGE.joinpath("templates").rglob("*"):
        if template.is_file():
            assert template.suffix == ".html", f"{template} is not autoescaped"
            assert "|safe" not in template.read_text().replace(" ", ""), template
    for module in PACKAGE.rglob("*.py"):
        assert "Markup(" not in module.read_text(), module


def test_no_python_under_static():
    assert not list(PACKAGE.joinpath("static").rglob("*.py"))


def test_session_cookie_flags(app, sponsor):
    client = login_as(app.test_client(), sponsor)
    cookie = client.get_cookie("srcflask_session")
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert not cookie.secure  # development and tests run on plain http


PRODUCTION_ENV = {"SRCFLASK_ENV": "production", "DATABASE_URL": "sqlite://", "JOBS_MODE": "manual"}


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, "SECRET_KEY is not set"),
        (PLACEHOLDER_SECRET_KEY, "placeholder"),
        ("too-short-secret", "too short"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(
    monkeypatch, tmp_path, secret, reason
):
    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    if secret is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", secret)

    with pytest.raises(ConfigError, match=reason):
        create_app(instance_path=str(tmp_path))


def test_production_secures_cookies_and_sends_hsts(monkeypatch, tmp_path):
    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SECRET_KEY", "k" * 48)

    app = create_app(instance_path=str(tmp_path))

    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    response = app.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_development_keeps_a_generated_secret_key_in_the_instance_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    first = create_app(env_name="development", instance_path=str(tmp_path))
    second = create_app(env_name="development", instance_path=str(tmp_path))
    assert len(first.config["SECRET_KEY"]) >= 32
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_oversized_requests_get_413_with_a_clear_page(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    response = app.test_client().post("/auth/signup", data={"name": "x" * 4096})
    assert response.status_code == 413
    assert "larger than this site accepts (1 KiB at most)" in response.get_data(as_text=True)


def test_error_pages_use_the_layout(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Page not found" in page and 'class="topbar"' in page


def test_unexpected_errors_show_no_traceback(app_factory):
    app = app_factory(PROPAGATE_EXCEPTIONS=False)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    from srcflask.security import public

    public(boom)
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong" in page
    assert "secret internals" not in page and "Traceback" not in page


def test_json_clients_get_json_errors(client):
    response = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_ids_beyond_the_database_range_are_404_not_errors(sponsor_client, admin_client):
    assert sponsor_client.get("/sponsor/documents/99999999999").status_code == 404
    assert sponsor_client.get("/documents/2147483648/machine-text").status_code == 404
    assert admin_client.post("/admin/users/99999999999/approve").status_code == 404


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("post", "/sponsor/documents/new", {"title": "a\x00b", "body": "x", "editor_id": ""}),
        ("get", "/sponsor/documents?status=done%00", None),
    ],
)
def test_nul_characters_are_refused_with_400(sponsor_client, method, url, data):
    response = getattr(sponsor_client, method)(url, data=data)
    assert response.status_code == 400
    assert "must not contain NUL characters" in response.get_data(as_text=True)


def test_nul_characters_in_login_and_search_are_refused(client, admin_client):
    assert (
        client.post(
            "/auth/login", data={"email": "a\x00@x.org", "password": "whatever"}
        ).status_code
        == 400
    )
    assert admin_client.get("/admin/users?q=a%00b").status_code == 400


def test_huge_page_numbers_are_clamped(admin_client, sponsor_client):
    assert admin_client.get("/admin/users?page=99999999999999999999").status_code == 200
    assert admin_client.get("/admin/audit?page=99999999999999999999").status_code == 200
    assert sponsor_client.get("/sponsor/documents?page=99999999999999999999").status_code == 200
