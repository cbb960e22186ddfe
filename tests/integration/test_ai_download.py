"""GK's model downloader against a real HTTP server on 127.0.0.1 that serves a pinned file the
way a model hub's resolve URL does (Range requests, 206), and can cut a download mid-way or
serve the wrong bytes. Driven through ``gk.ai.download`` and through the real ``gk ai`` CLI."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
from pathlib import Path

import pytest
from support.gkserver import gk
from support.ports import free_port

from gk.ai import catalogue, download

REPO, COMMIT, FILE = "gk-test/Tiny-GGUF", "0123456789abcdef0123456789abcdef01234567", "tiny.gguf"
PAYLOAD = bytes(range(256)) * 4096 + b"the end"  # ~1 MiB, several blocks


class Hub(http.server.ThreadingHTTPServer):
    daemon_threads = True
    body = PAYLOAD
    cut_after: int | None = None  # close the connection after this many body bytes (once)
    delay = 0.0  # seconds between 64 KiB pieces (a slow link)
    requests: list[str | None]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Hub

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.headers.get("Range"))
        if self.path not in (f"/{REPO}/resolve/{COMMIT}/{FILE}", f"/{REPO}/resolve/main/{FILE}"):
            self.send_error(404)
            return
        body, start = self.server.body, 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        data = body[start:]
        if self.server.cut_after is not None:
            data, self.server.cut_after = data[: self.server.cut_after], None
            self.wfile.write(data)
            self.wfile.flush()
            self.connection.shutdown(2)  # cut mid-body: the client sees a short read
            return
        if self.server.delay:
            for i in range(0, len(data), 65536):
                self.wfile.write(data[i : i + 65536])
                self.wfile.flush()
                time.sleep(self.server.delay)
            return
        self.wfile.write(data)


@pytest.fixture
def hub():
    srv = Hub(("127.0.0.1", free_port()), Handler)
    srv.requests = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def entry(sha: str = hashlib.sha256(PAYLOAD).hexdigest(), size: int = len(PAYLOAD), commit: str = COMMIT,
          revision: str = "") -> catalogue.Entry:  # fmt: skip
    return catalogue.Entry(
        id="tiny", name="Tiny", repo=REPO, commit=commit, file=FILE, size=size, approx_mb=1, sha256=sha,
        licence="MIT", ram_class=1, ram_mb=64, chat_format="chatml", tool_format="qwen", good=True,
        source="test", revision=revision,
    )  # fmt: skip


def base(hub: Hub) -> str:
    return f"http://127.0.0.1:{hub.server_address[1]}"


def test_a_pinned_file_is_downloaded_and_verified(hub, tmp_path):
    seen = []
    path = download.pull(entry(), tmp_path, base(hub), progress=lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == PAYLOAD and not (tmp_path / (FILE + ".part")).exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 3


def test_a_cut_download_resumes_with_a_range_request(hub, tmp_path):
    hub.cut_after = 300_000
    with pytest.raises(download.DownloadError, match="cut"):
        download.pull(entry(), tmp_path, base(hub))
    part = tmp_path / (FILE + ".part")
    assert 0 < part.stat().st_size < len(PAYLOAD)
    kept = part.stat().st_size
    path = download.pull(entry(), tmp_path, base(hub))
    assert path.read_bytes() == PAYLOAD
    assert hub.requests[-1] == f"bytes={kept}-"  # only the rest was fetched


def test_a_hash_mismatch_deletes_the_file(hub, tmp_path):
    hub.body = PAYLOAD[:-7] + b"THE END"  # same size, other bytes
    with pytest.raises(download.DownloadError, match="sha256 mismatch") as err:
        download.pull(entry(), tmp_path, base(hub))
    assert "deleted" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_an_entry_pinned_by_hash_follows_its_branch_and_refuses_a_changed_file(hub, tmp_path):
    hashed = entry(commit="", revision="main")
    assert hashed.pinned_by == "hash"
    assert download.pull(hashed, tmp_path / "a", base(hub)).read_bytes() == PAYLOAD
    hub.body = PAYLOAD[:-7] + b"THE END"  # the branch moved: same size, other bytes
    with pytest.raises(download.DownloadError, match="sha256 mismatch") as err:
        download.pull(hashed, tmp_path / "b", base(hub))
    assert "'main' branch" in str(err.value) and "deleted" in str(err.value)
    assert list((tmp_path / "b").iterdir()) == []
    hub.body = PAYLOAD + b"and more"  # a longer file: refused as it arrives, nothing kept
    with pytest.raises(download.DownloadError, match="more than the pinned") as err:
        download.pull(hashed, tmp_path / "c", base(hub))
    assert "'main' branch" in str(err.value) and list((tmp_path / "c").iterdir()) == []


def test_a_copy_on_the_boot_partition_is_installed_before_the_network_is_tried(hub, tmp_path):
    """gk ai pull ID, the models page and the wizard's AI step (download.fetch): a box without the
    internet installs the catalogue model its owner copied to the boot partition, hash-checked."""
    boot = tmp_path / "boot" / "gk-models"
    boot.mkdir(parents=True)
    (boot / FILE).write_bytes(PAYLOAD)
    path = download.fetch(entry(), tmp_path / "a", base(hub), [str(boot)])
    assert path.read_bytes() == PAYLOAD and hub.requests == []  # not a byte from the network
    # a wrong copy is left alone and the download is tried; when that fails too, both are said
    (boot / FILE).write_bytes(PAYLOAD[:-1] + b"!")
    assert download.fetch(entry(), tmp_path / "b", base(hub), [str(boot)]).read_bytes() == PAYLOAD
    assert len(hub.requests) == 1 and (boot / FILE).exists()
    with pytest.raises(download.DownloadError) as err:
        download.fetch(entry(), tmp_path / "c", "http://127.0.0.1:9", [str(boot)])
    assert "cannot reach" in str(err.value) and f"the copy at {boot / FILE} was not used" in str(err.value)


def test_not_enough_disk_is_refused_before_any_byte(hub, tmp_path):
    with pytest.raises(download.DownloadError, match="not enough disk space"):
        download.pull(entry(), tmp_path, base(hub), free=lambda p: len(PAYLOAD) // 2)
    assert hub.requests == [] and list(tmp_path.iterdir()) == []


def test_an_entry_without_a_pinned_hash_is_refused(hub, tmp_path):
    with pytest.raises(download.DownloadError, match="no published sha256"):
        download.pull(entry(sha=""), tmp_path, base(hub))
    assert hub.requests == []
    shipped = catalogue.load()
    assert {e.id for e in shipped} >= {"qwen2.5-0.5b-instruct", "llama-3.2-1b-instruct", "gemma-3-1b-it",
                                       "qwen2.5-1.5b-instruct", "qwen3-1.7b", "llama-3.2-3b-instruct",
                                       "qwen2.5-3b-instruct"}  # fmt: skip
    for e in shipped:
        if not e.downloadable:
            with pytest.raises(download.DownloadError):
                download.pull(e, tmp_path, "https://huggingface.co")


def test_plain_http_is_refused_except_on_loopback():
    with pytest.raises(download.DownloadError, match="HTTPS only"):
        download.check_url("http://models.example/x.gguf")
    download.check_url("https://models.example/x.gguf")
    download.check_url("http://127.0.0.1:8000/x.gguf")


def test_offline_import_checks_the_hash(tmp_path):
    stick = tmp_path / "usb" / "STICK"
    stick.mkdir(parents=True)
    good = stick / "mine.gguf"
    good.write_bytes(PAYLOAD)
    models = tmp_path / "models"
    with pytest.raises(download.DownloadError, match="unverified"):
        download.import_file(good, models, [])
    (stick / "mine.gguf.sha256").write_text(hashlib.sha256(PAYLOAD).hexdigest() + "  mine.gguf\n")
    assert download.offline_files([str(tmp_path / "usb")]) == [good]
    assert download.import_file(good, models, []).read_bytes() == PAYLOAD
    bad = stick / "bad.gguf"
    bad.write_bytes(b"x" * 1000)
    (stick / "bad.gguf.sha256").write_text(hashlib.sha256(b"y").hexdigest())
    with pytest.raises(download.DownloadError, match="sha256 mismatch"):
        download.import_file(bad, models, [])
    assert not (models / "bad.gguf").exists() and not (models / "bad.gguf.part").exists()


def write_catalogue(path: Path, sha: str, size: int) -> Path:
    path.write_text(
        f'[[model]]\nid = "tiny"\nname = "Tiny test model"\nrepo = "{REPO}"\ncommit = "{COMMIT}"\nfile = "{FILE}"\n'
        f'size = {size}\napprox_mb = 1\nsha256 = "{sha}"\nlicence = "MIT"\nram_class = 1\nram_mb = 64\n'
        f'chat_format = "chatml"\ntool_format = "qwen"\ngood = true\n'
    )
    return path


def test_the_cli_pulls_uses_and_removes_a_model(hub, tmp_path, tiny_gguf):
    from support.gkserver import GKServer

    data = tiny_gguf.read_bytes()
    hub.body = data
    hub.cut_after = len(data) // 3
    srv = GKServer(tmp_path / "gk", {"ai": {
        "catalogue": str(write_catalogue(tmp_path / "cat.toml", hashlib.sha256(data).hexdigest(), len(data))),
        "download_url_base": base(hub), "offline_dirs": [str(tmp_path / "offline")]}})  # fmt: skip
    srv.write_config()
    cat = tmp_path / "cat.toml"
    hashed = (
        cat.read_text()
        .replace('id = "tiny"', 'id = "tiny-main"')
        .replace(f'commit = "{COMMIT}"', 'commit = ""\nrevision = "main"')
    )
    cat.write_text(cat.read_text() + "\n" + hashed.replace('file = "tiny.gguf"', 'file = "tiny-main.gguf"'))
    listing = gk(srv.data_dir, "ai", "models").stdout
    assert "tiny" in listing and "fits" in listing and "default" in listing
    line = {ln.split()[0]: ln for ln in listing.splitlines() if ln.startswith("  tiny")}
    assert "follows branch" not in line["tiny"]  # pinned by its commit
    assert "sha256 pinned, URL follows branch main" in line["tiny-main"]
    cut = gk(srv.data_dir, "ai", "pull", "tiny", check=False)
    assert cut.returncode == 1 and "pull again to resume" in cut.stderr
    done = gk(srv.data_dir, "ai", "pull", "tiny")
    assert "installed tiny.gguf (sha256 verified)" in done.stdout and "MiB (100 %)" in done.stderr
    assert hub.requests[-1] and hub.requests[-1].startswith("bytes=")
    assert "now uses tiny.gguf" in gk(srv.data_dir, "ai", "use", "tiny").stdout
    assert "in use" in gk(srv.data_dir, "ai", "models").stdout
    status = gk(srv.data_dir, "ai", "status").stdout
    assert "model: tiny.gguf" in status and "* tiny.gguf: llama" in status
    assert "removed tiny.gguf" in gk(srv.data_dir, "ai", "rm", "tiny").stdout
    assert not (srv.data_dir / "models" / "tiny.gguf").exists()
    unknown = gk(srv.data_dir, "ai", "pull", "nope", check=False)
    assert unknown.returncode == 1 and "no model 'nope'" in unknown.stderr


def test_the_models_page_downloads_with_progress(hub, tmp_path, tiny_gguf):
    from support.gkserver import GKServer
    from test_web_http import NO_MAIL, Client

    from gk import claim

    data = tiny_gguf.read_bytes()
    hub.body = data
    cat = write_catalogue(tmp_path / "cat.toml", hashlib.sha256(data).hexdigest(), len(data))
    with_unpinned = cat.read_text() + (
        '\n[[model]]\nid = "unpinned"\nname = "Unpinned"\nrepo = "x/y"\ncommit = ""\nfile = "u.gguf"\nsize = 0\n'
        'approx_mb = 1\nsha256 = ""\nlicence = "MIT"\nram_class = 1\nram_mb = 64\nchat_format = "chatml"\n'
        'tool_format = "none"\ngood = false\n'
        '\n[[model]]\nid = "by-hash"\nname = "By hash"\nrepo = "x/y"\ncommit = ""\nrevision = "main"\n'
        f'file = "h.gguf"\nsize = 10\napprox_mb = 1\nsha256 = "{"ab" * 32}"\nlicence = "MIT"\nram_class = 1\n'
        'ram_mb = 64\nchat_format = "chatml"\ntool_format = "none"\ngood = false\n'
    )
    cat.write_text(with_unpinned)
    srv = GKServer(tmp_path / "gk", {**NO_MAIL, "ai": {"catalogue": str(cat), "download_url_base": base(hub)}})
    srv.write_config()
    srv.add_user("owner@test.example", "correct horse battery", admin=True)
    claim.complete(srv.data_dir)
    srv.start(wait=120)
    try:
        c = Client(srv)
        c.login("owner@test.example", "correct horse battery")
        _, page = c.get("/admin/models")
        assert "Tiny test model" in page and "no pinned checksum yet" in page
        assert page.count("follows the main branch") == 1  # said of the entry pinned by its hash only
        resp, page = c.post("/admin/models/pull", {"model": "unpinned"})
        assert resp.status == 400 and "cannot be downloaded safely" in page
        # a slow download is stopped from the page; its .part stays and the next pull resumes it
        hub.delay = 0.5
        resp, _ = c.post("/admin/models/pull", {"model": "tiny"})
        assert resp.status == 303
        _, page = c.get("/admin/models")
        assert "<progress" in page
        deadline = time.monotonic() + 60
        while not re.search(r'<progress max="100" value="[1-9]', c.get("/admin/models/progress")[1]):
            assert time.monotonic() < deadline  # some bytes arrived: the stop keeps a non-empty .part
            time.sleep(0.1)
        _, page = c.get("/assistant")  # no model yet: the assistant's page tells of the download
        assert "The model tiny is downloading" in page
        c.get("/admin/models")
        resp, _ = c.post("/admin/models/stop", {"model": "tiny"})
        assert resp.status == 303
        deadline = time.monotonic() + 60
        while c.get("/admin/models/progress")[0].status != 286:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert "stopped at" in c.get("/admin/models/progress")[1]
        assert (srv.data_dir / "models" / (FILE + ".part")).exists()
        _, page = c.get("/assistant")
        assert "The download of the model tiny did not finish, so the assistant cannot answer yet." in page
        assert "stopped at" in page.split("Technical details", 1)[1]  # the download's own words, folded away
        hub.delay = 0.0
        resp, _ = c.post("/admin/models/pull", {"model": "tiny"})
        assert resp.status == 303
        deadline = time.monotonic() + 60
        while True:
            resp, frag = c.get("/admin/models/progress")
            if resp.status == 286:  # htmx stops polling: nothing runs any more
                break
            assert resp.status == 200 and ("<progress" in frag or "installed" in frag)
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert "installed" in frag and "error" not in frag
        assert (srv.data_dir / "models" / FILE).read_bytes() == data
        assert hub.requests[-1] and hub.requests[-1].startswith("bytes=")  # resumed
        _, page = c.get("/admin/models")
        assert "<strong>in use</strong>" in page  # the only model: the assistant uses it
        _, page = c.get("/assistant")
        assert "no-model" not in page
    finally:
        srv.stop()


def test_a_disk_that_fills_up_during_the_download_is_an_error_not_a_crash(hub, tmp_path, monkeypatch):
    """The free-space check passed, then something else filled the disk: the write's ENOSPC is a
    clear error and the partial file stays for a resume."""
    import errno

    real_open = Path.open

    class Full:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, data):
            self.n += len(data)
            if self.n > 400_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def opener(self, mode="r", *a, **kw):
        f = real_open(self, mode, *a, **kw)
        return Full(f) if self.name.endswith(".part") and "b" in mode and mode[0] in "wa" else f

    monkeypatch.setattr(Path, "open", opener)
    with pytest.raises(download.DownloadError, match="No space left on device"):
        download.pull(entry(), tmp_path, base(hub))
    monkeypatch.undo()
    assert (tmp_path / (FILE + ".part")).exists()
    assert download.pull(entry(), tmp_path, base(hub)).read_bytes() == PAYLOAD  # resumed once space is back
