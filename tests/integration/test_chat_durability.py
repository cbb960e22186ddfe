"""Every chat message acknowledged to its sender survives kill -9, exactly once: four IRC
connections pipeline a burst of messages, the server is killed with SIGKILL while echoes
(the acknowledgement: sent only after the commit) are still arriving, and after a restart
the history holds every echoed message once, and nothing twice."""

from __future__ import annotations

import re
import threading

from support.irc import ALICE, BOB, PASSWORD, connect
from test_chat_irc import port

CONNECTIONS = 4
BURST = 400  # messages per connection, pipelined


def test_echoed_messages_survive_kill_9_exactly_once(make_server):  # type: ignore[no-untyped-def]
    srv = make_server(
        "chatkill",
        {
            "http": {"https_port": 0},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "chat": {"line_burst": 5000, "lines_per_second": 5000.0},
        },
    )
    srv.write_config()
    srv.add_user(ALICE, PASSWORD)
    srv.add_user(BOB, PASSWORD)
    srv.start()
    clients = [connect(port(srv), ALICE if i % 2 else BOB, "echo-message message-tags") for i in range(CONNECTIONS)]
    for c in clients:
        c.until(r" 366 \S+ #general ")
    acked: dict[str, str] = {}  # text -> msgid
    lock = threading.Lock()
    enough = threading.Event()

    def reader(i: int) -> None:
        c = clients[i]
        while True:
            try:
                ln = c.line(60)
            except AssertionError:
                return
            if ln is None:
                return
            m = re.search(r"msgid=([^; ]+).* PRIVMSG #general :(burst \d+-\d+)$", ln)
            if m and m.group(2).startswith(f"burst {i}-"):
                with lock:
                    acked[m.group(2)] = m.group(1)
                    if len(acked) >= CONNECTIONS * BURST // 4:
                        enough.set()

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for i, c in enumerate(clients):
        c.send(b"\r\n".join(b"PRIVMSG #general :burst %d-%d" % (i, n) for n in range(BURST)))
    assert enough.wait(120), f"only {len(acked)} echoes"
    srv.kill9()  # in the middle of the burst
    for t in threads:
        t.join(60)
    for c in clients:
        c.close()
    with lock:
        echoed = dict(acked)
    print(f"{len(echoed)} of {CONNECTIONS * BURST} messages echoed before kill -9")

    srv.log_path.rename(srv.log_path.with_suffix(".before-kill"))
    srv.start()
    c = connect(port(srv), ALICE, "message-tags batch")
    c.until(r" 366 alice #general ")
    c.send("CHATHISTORY LATEST #general * 1000")
    lines = c.until(r"BATCH -")
    texts: list[str] = []
    ids: list[str] = []
    for ln in lines:
        m = re.search(r"msgid=([^; ]+).* PRIVMSG #general :(burst \d+-\d+)$", ln)
        if m:
            ids.append(m.group(1))
            texts.append(m.group(2))
    if len(ids) == 1000:  # 1000 is the page size cap: page back until the start
        oldest = ids[0]
        while True:
            c.send(f"CHATHISTORY BEFORE #general msgid={oldest} 1000")
            more = c.until(r"BATCH -")
            page = [re.search(r"msgid=([^; ]+).* PRIVMSG #general :(burst \d+-\d+)$", ln) for ln in more]
            page = [m for m in page if m]
            if not page:
                break
            ids = [m.group(1) for m in page] + ids
            texts = [m.group(2) for m in page] + texts
            oldest = ids[0]
    assert len(texts) == len(set(texts)), "a message is in history twice"
    stored = dict(zip(texts, ids, strict=True))
    missing = [t for t in echoed if t not in stored]
    assert not missing, f"{len(missing)} echoed messages lost, e.g. {missing[:3]}"
    assert all(stored[t] == echoed[t] for t in echoed), "a message came back with another msgid"
    # the order each connection sent in is the order stored
    for i in range(CONNECTIONS):
        mine = [int(t.split("-")[1]) for t in texts if t.startswith(f"burst {i}-")]
        assert mine == sorted(mine)
    c.close()
