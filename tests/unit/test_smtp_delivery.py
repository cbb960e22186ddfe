"""Local delivery on real files: trace headers, forged A-R removal, group commit under concurrency."""

from __future__ import annotations

import gevent

from gk.mail.delivery import LocalDelivery, Target
from gk.mail.delivery.local import copy_with_headers


def test_copy_with_headers_strips_only_our_authentication_results(tmp_path):
    spool = tmp_path / "spool.eml"
    spool.write_bytes(
        b"Authentication-Results: MX.test.example; spf=pass\r\n\tdkim=pass\r\n"
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"Subject: hi\r\n\r\nAuthentication-Results: mx.test.example; in the body stays\r\n"
    )
    md = tmp_path / "Maildir"
    tmp = copy_with_headers(md, b"Return-Path: <a@b.example>\r\n", spool, "mx.test.example")
    assert tmp.parent == md / "tmp"
    assert tmp.read_bytes() == (
        b"Return-Path: <a@b.example>\r\n"
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"Subject: hi\r\n\r\nAuthentication-Results: mx.test.example; in the body stays\r\n"
    )


def test_concurrent_deliveries_share_directory_fsyncs(tmp_path):
    spool = tmp_path / "m.eml"
    spool.write_bytes(b"Subject: x\r\n\r\n" + b"body\r\n" * 100)
    delivery = LocalDelivery(tmp_path / "mail", "mx.test.example")
    jobs = [
        gevent.spawn(delivery.deliver, spool, [Target(f"u{i % 3}@example.org", f"u{i % 3}@example.org")], b"", "s@x")
        for i in range(60)
    ]
    gevent.joinall(jobs, raise_error=True)
    paths = [p for j in jobs for p in j.value]
    assert len(paths) == 60 and all(p.parent.name == "new" and p.exists() for p in paths)
    for i in range(3):
        md = tmp_path / "mail" / f"u{i}@example.org" / "Maildir"
        assert len(list((md / "new").iterdir())) == 20
        assert list((md / "tmp").iterdir()) == []
    assert delivery.committer.committed == 60
    assert delivery.committer.batches < 60  # fsyncs of new/ were shared
    first = paths[0].read_bytes()
    assert first.startswith(b"Return-Path: <s@x>\r\nDelivered-To: u0@example.org\r\nSubject: x\r\n")
    assert paths[0].name.endswith(f",S={len(first)}")


def test_junk_folder_and_duplicate_targets(tmp_path):
    spool = tmp_path / "m.eml"
    spool.write_bytes(b"Subject: x\r\n\r\nb\r\n")
    delivery = LocalDelivery(tmp_path / "mail", "mx.test.example")
    out = gevent.spawn(
        delivery.deliver,
        spool,
        [Target("a+1@example.org", "a@example.org", "Junk"), Target("a+2@example.org", "a@example.org", "Junk")],
        b"",
        "",
    ).get()
    assert len(out) == 1
    assert out[0].parent == tmp_path / "mail" / "a@example.org" / "Maildir" / ".Junk" / "new"


def test_copy_with_headers_from_memory(tmp_path):
    message = (
        b"Authentication-Results: mx.test.example; dkim=pass\r\n"
        b"Subject: small\r\n\r\nAuthentication-Results: mx.test.example; body\r\n"
    )
    tmp = copy_with_headers(tmp_path / "Maildir", b"Delivered-To: a@b.example\r\n", message, "mx.test.example")
    assert tmp.read_bytes() == (
        b"Delivered-To: a@b.example\r\nSubject: small\r\n\r\nAuthentication-Results: mx.test.example; body\r\n"
    )
    headerless = copy_with_headers(tmp_path / "Maildir", b"X: y\r\n", b"\r\njust a body\r\n", "mx.test.example")
    assert headerless.read_bytes() == b"X: y\r\n\r\njust a body\r\n"


def test_in_memory_deliveries_are_written_and_committed_in_batches(tmp_path):
    delivery = LocalDelivery(tmp_path / "mail", "mx.test.example")
    jobs = [
        gevent.spawn(
            delivery.deliver,
            b"Subject: n%d\r\n\r\nbody\r\n" % i,
            [Target(f"u{i % 3}@example.org", f"u{i % 3}@example.org")],
            b"X-Common: 1\r\n",
            "s@x",
        )
        for i in range(60)
    ]
    gevent.joinall(jobs, raise_error=True)
    assert delivery.committer.committed == 60
    assert delivery.committer.batches < 30  # one threadpool call and sync per batch, not per message
    for i, job in enumerate(jobs):
        (path,) = job.value
        raw = path.read_bytes()
        assert (
            raw
            == b"Return-Path: <s@x>\r\nDelivered-To: u%d@example.org\r\nX-Common: 1\r\nSubject: n%d\r\n\r\nbody\r\n"
            % (
                i % 3,
                i,
            )
        )
        assert path.parent.name == "new" and path.name.endswith(f",S={len(raw)}")
    for i in range(3):
        assert list((tmp_path / "mail" / f"u{i}@example.org" / "Maildir" / "tmp").iterdir()) == []


def test_failed_copy_in_a_batch_leaves_nothing_and_spares_the_others(tmp_path):
    delivery = LocalDelivery(tmp_path / "mail", "mx.test.example")
    broken = tmp_path / "mail" / "broken@example.org"
    broken.mkdir(parents=True)
    (broken / "Maildir").write_bytes(b"not a directory")  # its Maildir cannot be created
    good = gevent.spawn(
        delivery.deliver, b"Subject: a\r\n\r\nx\r\n", [Target("ok@example.org", "ok@example.org")], b"", ""
    )
    bad = gevent.spawn(
        delivery.deliver, b"Subject: b\r\n\r\ny\r\n", [Target("broken@example.org", "broken@example.org")], b"", ""
    )
    gevent.joinall([good, bad])
    assert good.successful() and good.value[0].exists()
    assert isinstance(bad.exception, OSError)
    assert delivery.committer.committed == 1


def test_forged_authentication_results_removed_from_in_memory_message(tmp_path):
    delivery = LocalDelivery(tmp_path / "mail", "mx.test.example")
    message = b"AUTHENTICATION-RESULTS: Mx.Test.Example; spf=pass\r\nSubject: s\r\n\r\nbody\r\n"
    (path,) = gevent.spawn(delivery.deliver, message, [Target("a@example.org", "a@example.org")], b"", "").get()
    assert path.read_bytes() == b"Return-Path: <>\r\nDelivered-To: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"
