"""The sync and async clients against a real ``tessera serve``."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import httpx
import pytest

from tessera_server import API_KEY, Server
from tessera_sessions import AsyncClient, Client, errors
from tessera_sessions._cookies import apply


@pytest.fixture
def client(tessera: Server) -> Iterator[Client]:
    with Client(tessera.url, API_KEY) as c:
        yield c


def test_an_empty_cookie_resolves_to_no_session(client: Client) -> None:
    r = client.resolve("")
    assert r.session is None
    assert r.status == "none"
    assert r.set_cookie == []


def test_update_creates_an_anonymous_session_that_resolves(client: Client) -> None:
    r = client.update("", set={"cart": [1, 2]})
    assert r.session is not None
    assert r.session.kind == "anonymous"
    assert r.session.user is None
    cookie = apply("", r.set_cookie)
    again = client.resolve(cookie)
    assert again.session is not None
    assert again.session.data == {"cart": [1, 2]}
    assert again.csrf_token


def test_login_csrf_users_and_logout(client: Client) -> None:
    anon = apply("", client.update("", set={"theme": "dark"}).set_cookie)
    r = client.login(anon, "alice", name="Alice", claims={"rlc": "gold"})
    assert r.session is not None
    assert r.session.user is not None
    assert r.session.user.id == "alice"
    assert r.session.data == {"theme": "dark"}, "the anonymous data is carried over"
    assert r.token_status == "issued"
    assert any(c.startswith("__Host-tessera-token=") for c in r.set_cookie)
    cookie = apply(anon, r.set_cookie)
    assert r.csrf_token is not None
    assert client.check_csrf(cookie, r.csrf_token) is True
    assert client.check_csrf(cookie, r.csrf_token, purpose="other") is False

    refs = [s.ref for s in client.list_sessions("alice")]
    assert r.session.ref in refs
    client.revoke_session("alice", r.session.ref)
    with pytest.raises(errors.SessionNotFound) as e:
        client.revoke_session("alice", r.session.ref)
    assert e.value.status == 404
    assert e.value.type == "urn:tessera:problem:session-not-found"

    out = client.logout(cookie)
    assert out.session is None
    assert out.status == "logged_out"


def test_log_out_everywhere_reaches_the_feed(client: Client) -> None:
    cookie = apply("", client.login("", "bob").set_cookie)
    before = client.revocations()
    assert before is not None
    done = client.revoke_all("bob")
    assert done.revoked == 1
    assert client.resolve(cookie).session is None
    feed = client.revocations(after=before.next)
    assert feed is not None
    assert any(e.kind == "user" and e.id == "bob" for e in feed.revocations)
    assert client.revocations(after=before.next, etag=feed.etag) is None, "304: unchanged"
    with pytest.raises(errors.InvalidQuery):
        client.revocations(limit=0)


def test_problems_are_exception_classes(tessera: Server, client: Client) -> None:
    with Client(tessera.url, "wrong-key") as bad, pytest.raises(errors.Unauthorized):
        bad.resolve("")
    with pytest.raises(errors.MalformedCookie) as e:
        client.update("__Host-tessera=not-a-handle", set={"a": 1})
    assert e.value.set_cookie and e.value.set_cookie[0].startswith("__Host-tessera=;")
    with pytest.raises(errors.InvalidRequest):
        client.login("", "")
    with pytest.raises(errors.SessionNotFound):
        client.update("__Host-tessera=u" + "A" * 43, set={"a": 1})
    assert isinstance(e.value, errors.ProblemError)


def test_tokens_and_the_verifier(client: Client) -> None:
    token = client.mint("svc:reporting", {"rlc": "bulk"})
    v = client.verify(authorization=f"Bearer {token}")
    assert v.valid
    assert v.subject == "svc:reporting"
    assert v.token_status == "ok"
    none = client.verify()
    assert not none.valid
    keys = client.jwks()["keys"]
    assert keys and keys[0]["kty"] == "OKP"


def test_kask(client: Client) -> None:
    key = "wiki:MWSession:abc?d%e f"
    assert client.kask_get(key) is None
    client.kask_put(key, b"PHP.x.y")
    assert client.kask_get(key) == b"PHP.x.y"
    client.kask_delete(key)
    client.kask_delete(key)
    assert client.kask_get(key) is None
    with pytest.raises(errors.KaskError) as e:
        client.kask_put(key, b"")
    assert e.value.kind == "bad_request"
    with pytest.raises(ValueError, match="/"):
        client.kask_get("a/b")


def test_ready(client: Client) -> None:
    assert client.ready()


# --- retry, timeouts: the client's own logic, with a transport that answers as told ---


def _transport(statuses: list[int], seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        status = statuses.pop(0)
        if status == 200:
            return httpx.Response(200, json={"valid": True})
        return httpx.Response(
            status,
            json={"type": "urn:tessera:problem:x", "title": "t", "status": status, "detail": "d"},
        )

    return httpx.MockTransport(handler)


def test_503_is_retried_with_backoff_and_nothing_else_is() -> None:
    seen: list[str] = []
    c = Client(
        "http://tessera.test", "k", backoff=0.001, transport=_transport([503, 503, 200], seen)
    )
    assert c.check_csrf("", "t") is True
    assert len(seen) == 3

    seen.clear()
    c = Client(
        "http://tessera.test", "k", retries=1, backoff=0.001, transport=_transport([503, 503], seen)
    )
    with pytest.raises(errors.ProblemError) as e:
        c.check_csrf("", "t")
    assert e.value.status == 503
    assert len(seen) == 2

    for status in (500, 502, 504, 409):
        seen.clear()
        c = Client(
            "http://tessera.test", "k", backoff=0.001, transport=_transport([status, 200], seen)
        )
        with pytest.raises(errors.ProblemError):
            c.check_csrf("", "t")
        assert len(seen) == 1, f"{status} must not be retried"


def test_a_timeout_is_a_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    c = Client("http://tessera.test", "k", transport=httpx.MockTransport(handler))
    with pytest.raises(errors.TransportError):
        c.resolve("")


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_URL", "http://from-env.test/")
    monkeypatch.setenv("TESSERA_API_KEY", "env-key")
    c = Client()
    assert c.url == "http://from-env.test"
    monkeypatch.delenv("TESSERA_URL")
    with pytest.raises(ValueError, match="TESSERA_URL"):
        Client()


# --- async ---


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_async_client_does_the_same(tessera: Server) -> None:
    async with AsyncClient(tessera.url, API_KEY) as c:
        r = await c.login("", "carol", remember=True)
        assert r.session is not None and r.session.remember
        cookie = apply("", r.set_cookie)
        r = await c.update(cookie, set={"n": 1})
        assert r.session is not None and r.session.data == {"n": 1}
        assert r.csrf_token is not None
        assert await c.check_csrf(cookie, r.csrf_token)
        assert [s.ref for s in await c.list_sessions("carol")] == [r.session.ref]
        await c.kask_put("k", b"v")
        assert await c.kask_get("k") == b"v"
        out = await c.logout(cookie)
        assert out.session is None
        with pytest.raises(errors.SessionNotFound):
            await c.update(cookie, set={"n": 2})


@pytest.mark.anyio
async def test_the_async_client_retries_503_only() -> None:
    seen: list[str] = []
    statuses = [503, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        status = statuses.pop(0)
        return httpx.Response(status, json={"valid": True} if status == 200 else {})

    async with AsyncClient(
        "http://tessera.test", "k", backoff=0.001, transport=httpx.MockTransport(handler)
    ) as c:
        assert await c.check_csrf("", "t")
    assert len(seen) == 2


def test_the_async_client_mirrors_the_sync_client() -> None:
    """Each method of one is the other's: the same name, signature and docstring."""

    def public(cls: type) -> set[str]:
        return {n for n in vars(cls) if not n.startswith("_")}

    assert public(AsyncClient) == public(Client)
    for name in public(Client):
        sync, aio = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(aio), name
        assert inspect.signature(aio) == inspect.signature(sync), name
        assert aio.__doc__ and aio.__doc__ == sync.__doc__, name
