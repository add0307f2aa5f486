"""Keys and logins under attack (issue 20): wrong keys slowed down per client and per key,
login sessions kept on the server (logout and expiry end them), the CSRF token renewed at
login, ``Secure`` cookies behind a trusted proxy."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from lxml import html

from service.config import ConfigError, Settings
from service.security import throttle
from service.web.app import create_app

KEY = "session-key-1"


def _app(tmp_path, **kw):
    settings = Settings(data_dir=tmp_path / "d", api_key=KEY, encoder="none", open_reads=False,
                        **kw)
    return create_app(settings)


@pytest.fixture()
def app(tmp_path):
    return _app(tmp_path)


def _login(client: TestClient, key: str = KEY, **headers):
    form = html.fromstring(client.get("/login", headers=headers).text)
    csrf = form.cssselect("input[name=csrf]")[0].get("value")
    answer = client.post("/login", data={"key": key, "csrf": csrf, "next": "/memory"},
                         headers=headers, follow_redirects=False)
    return answer, csrf


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_wrong_keys_are_slowed_down_per_client_and_per_key(app):
    clock = Clock()
    app.state.keys.throttle._clock = clock
    with TestClient(app, client=("192.0.2.1", 1000)) as one:
        two = TestClient(app, client=("192.0.2.2", 1000))
        for n in range(throttle.FREE_FAILURES):
            answer = one.get("/admin/keys", headers={"X-API-Key": f"guess-{n}"})
            assert answer.status_code == 403
        slowed = one.get("/admin/keys", headers={"X-API-Key": "guess-next"})
        assert slowed.status_code == 429 and slowed.json()["error"]["code"] == "too_many_failures"
        assert int(slowed.headers["Retry-After"]) >= 1
        # the right key from the same client waits too (the key is not even looked at) ...
        assert one.get("/admin/keys", headers={"X-API-Key": KEY}).status_code == 429
        # ... while another client is not slowed down
        assert two.get("/admin/keys", headers={"X-API-Key": KEY}).status_code == 200
        # the login form counts the same failures
        page, _ = _login(one, "guess-login")
        assert page.status_code == 429 and "Retry-After" in page.headers
        clock.now += 2  # the first delay has passed: one more try, then a longer wait
        assert one.get("/admin/keys", headers={"X-API-Key": "guess-6"}).status_code == 403
        assert one.get("/admin/keys", headers={"X-API-Key": KEY}).status_code == 429
        clock.now += throttle.MAX_DELAY_S
        assert one.get("/admin/keys", headers={"X-API-Key": KEY}).status_code == 200
        # one wrong key tried from many clients is slowed down as well
        for n in range(throttle.FREE_FAILURES):
            other = TestClient(app, client=(f"192.0.2.{10 + n}", 1000))
            assert other.get("/admin/keys", headers={"X-API-Key": "shared"}).status_code == 403
        last = TestClient(app, client=("192.0.2.99", 1000))
        assert last.get("/admin/keys", headers={"X-API-Key": "shared"}).status_code == 429


def test_the_session_cookie_is_not_the_key_and_logout_ends_it(app):
    with TestClient(app) as client:
        answer, before = _login(client)
        assert answer.status_code == 303
        token = client.cookies["concordia_session"]
        assert token != KEY and KEY not in answer.headers.get("set-cookie", "")
        assert client.cookies["concordia_csrf"] != before  # a new CSRF token at login
        assert client.get("/memory", follow_redirects=False).status_code == 200
        copied = TestClient(app, cookies={"concordia_session": token})
        assert copied.get("/memory", follow_redirects=False).status_code == 200
        client.post("/logout", data={"csrf": client.cookies["concordia_csrf"]},
                    follow_redirects=False)
        ended = copied.get("/memory", follow_redirects=False)
        assert ended.status_code == 303 and "why=expired" in ended.headers["location"]
        api = copied.get("/tm/stats")
        assert api.status_code == 401 and api.json()["error"]["code"] == "session_ended"


def test_sessions_expire(app):
    with TestClient(app) as client:
        _login(client)
        assert client.get("/memory", follow_redirects=False).status_code == 200
        app.state.sessions.seconds = -1  # sessions opened from now on are already over
        _login(client)
        assert client.get("/memory", follow_redirects=False).status_code == 303


def test_secure_cookies_behind_a_trusted_proxy_only(tmp_path):
    app = _app(tmp_path, trusted_proxies="10.0.0.0/8")
    https = {"X-Forwarded-Proto": "https"}
    with TestClient(app, client=("10.1.2.3", 1000)) as behind_proxy:
        answer, _ = _login(behind_proxy, **https)
        cookies = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
        assert cookies and all("Secure" in c for c in cookies)
    direct = TestClient(app, client=("203.0.113.9", 1000))
    answer, _ = _login(direct, **https)  # anyone can send the header: not believed
    cookies = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
    assert cookies and not any("Secure" in c for c in cookies)
    with pytest.raises(ConfigError):
        Settings(trusted_proxies="10.0.0.0/8, not-an-address")


def test_logins_per_key_are_bounded(app, monkeypatch):
    from service.security import session

    monkeypatch.setattr(session, "MAX_SESSIONS_PER_KEY", 3)
    store = app.state.sessions
    tokens = [store.open(KEY) for _ in range(5)]
    assert [store.key_of(t) is not None for t in tokens] == [False, False, True, True, True]
