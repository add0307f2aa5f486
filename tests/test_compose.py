"""compose.yaml and deploy/nginx.conf, checked without a Docker engine: PostgreSQL, two
replicas of the image the Dockerfile builds sharing one store and one job folder but not their
indexes, and a proxy that sends to both and lets through what a replica accepts."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from service.config import Settings
from tests.test_dockerfile import exec_form, first

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def nginx() -> str:
    return (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")


def replicas() -> dict[str, dict]:
    return {name: s for name, s in compose()["services"].items() if s.get("build") == "."}


def test_two_replicas_share_one_store_and_job_folder_but_not_indexes():
    services = compose()["services"]
    pair = replicas()
    assert len(pair) == 2
    urls = {s["environment"]["CONCORDIA_STORE"] for s in pair.values()}
    assert len(urls) == 1
    store = urlsplit(urls.pop().replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}", "pw"))
    assert store.scheme == "postgresql" and store.hostname in services
    db = services[store.hostname]
    assert db["image"].startswith("postgres:15")
    assert store.username == db["environment"]["POSTGRES_USER"]
    assert store.path == "/" + db["environment"]["POSTGRES_DB"]
    mounts = [dict(v.split(":")[:2] for v in [m]) for s in pair.values() for m in s["volumes"]]
    own = [m for m in mounts if "/data" in m.values()]
    shared = [m for m in mounts if "/data/jobs" in m.values()]
    assert len({next(iter(m)) for m in own}) == 2, "each replica keeps its own indexes"
    assert len({next(iter(m)) for m in shared}) == 1 and len(shared) == 2
    assert "CONCORDIA_DATA_DIR=/data" in first("ENV")  # the image's data folder
    for service in pair.values():
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert "CONCORDIA_API_KEY" in service["environment"]
    named = set(compose()["volumes"])
    assert {next(iter(m)) for m in own + shared} <= named


def test_the_proxy_sends_to_both_replicas_on_the_port_they_serve():
    proxy = compose()["services"]["proxy"]
    config = proxy["volumes"][0].split(":")
    assert (ROOT / config[0]).resolve() == ROOT / "deploy" / "nginx.conf"
    assert config[1].startswith("/etc/nginx/conf.d/")
    cmd = exec_form(first("CMD"))
    port = cmd[cmd.index("--port") + 1]
    upstream = re.search(r"upstream concordia \{(.*?)\}", nginx(), re.S)[1]
    servers = re.findall(r"server ([\w-]+):(\d+)", upstream)
    assert sorted(servers) == sorted((name, port) for name in replicas())
    assert "proxy_pass http://concordia;" in nginx()
    assert set(proxy["depends_on"]) == set(replicas())


def test_the_proxy_lets_through_what_a_replica_accepts():
    settings = Settings()
    size = re.search(r"client_max_body_size (\d+)m;", nginx())
    assert int(size[1]) * 1024 * 1024 >= settings.max_upload_bytes
    read = re.search(r"proxy_read_timeout (\d+)s;", nginx())
    assert int(read[1]) >= settings.request_timeout_s
    body = re.search(r"client_body_timeout (\d+)s;", nginx())
    assert int(body[1]) >= settings.body_timeout_s
    assert "proxy_buffering off;" in nginx()  # exports stream
