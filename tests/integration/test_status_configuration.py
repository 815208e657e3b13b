"""The status shows the configuration in force (issue 19, items 5 and 7; topologies/four-hosts.topo).

Text and JSON show the timers (with the derived intervals), the querier, flooding, the SSM
ranges, the limits, the aging time and the reserved addresses relayed (JSON `configuration`),
each VLAN some port carries (snooping and querier per protocol, and its own settings), and each
port's flags (router, fast-leave, query-guard, attachment), at start and after SIGHUP changes
them. A SIGHUP that changes only a port's flags changes them in place: the port keeps its
counters and memberships. A TAP port shows the interface index the kernel gave it.
"""

from __future__ import annotations

import re
import signal

from lab import members, port_entry, random_marker, wait_until

G = "239.4.5.6"
PORT = 5090

START_FILE = """\
port h1
port h2
port h3:query-guard
port h4:pvid=10:tagged=20
query-interval 30
vlan 20:no-snooping
"""

EDITED_FILE = """\
port h1:query-guard
port h2
port h3
port h4:pvid=10:tagged=20
query-interval 60
flood-unregistered
vlan 10:no-snooping
"""


def write_config(lab, text: str) -> str:
    path = lab.tmpdir / "status-configuration.conf"
    path.write_text(text)
    return str(path)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def vlan_entry(status: dict, vlan: int) -> dict:
    for v in status["configuration"]["vlans"]:
        if v["vlan"] == vlan:
            return v
    raise KeyError(f"no VLAN {vlan} in the configuration: {status['configuration']['vlans']}")


def check_configuration(sw, query_interval: int, flood_unregistered: bool, unsnooped: int, snooped: int,
                        guarded: str, unguarded: str) -> None:
    """The JSON and the text both show the query interval (and what it derives), flooding of
    unregistered groups, VLAN `unsnooped` without snooping (its own `no-snooping`) and
    `snooped` with it, port `guarded` with query-guard and `unguarded` without."""
    st = sw.status()
    configuration = st["configuration"]
    timers = configuration["timers"]
    assert timers["query_interval"] == query_interval, timers
    assert timers["robustness"] == 2 and timers["query_response_interval"] == 10, timers
    assert timers["group_membership_interval"] == 2 * query_interval + 10, timers
    assert timers["other_querier_present_interval"] == 2 * query_interval + 5, timers
    assert configuration["flood_unregistered"] is flood_unregistered, configuration
    assert [v["vlan"] for v in configuration["vlans"]] == [1, 10, 20], configuration["vlans"]
    off, on = vlan_entry(st, unsnooped), vlan_entry(st, snooped)
    assert (off["igmp_snooping"], off["mld_snooping"], off["overrides"]["snooping"]) == (False, False, False), off
    assert (on["igmp_snooping"], on["mld_snooping"], on["overrides"]["snooping"]) == (True, True, None), on
    assert port_entry(st, guarded)["query_guard"] is True, port_entry(st, guarded)
    assert port_entry(st, unguarded)["query_guard"] is False, port_entry(st, unguarded)
    assert all(p["attachment"] == "packet" for p in st["ports"]), st["ports"]

    text = sw.status_text()
    assert f"query-interval {query_interval}s," in text, text
    assert f"group membership interval {2 * query_interval + 10}s" in text, text
    assert f"flood-unregistered {'on' if flood_unregistered else 'off'}," in text, text
    table = rows(text)
    assert [str(unsnooped), "IGMP", "off", "off", "0.0.0.0", "v3", "no-snooping"] in table, text
    assert [str(snooped), "IGMP", "on", "off", "0.0.0.0", "v3", "-"] in table, text
    header = next(r for r in table if r[:2] == ["PORT", "IFINDEX"])
    guard = header.index("QUERY-GUARD")
    port_rows = {r[0]: r for r in table if len(r) == len(header) and r[0] in ("h1", "h2", "h3", "h4")}
    assert port_rows[guarded][guard] == "yes" and port_rows[unguarded][guard] == "no", text
    assert port_rows[guarded][header.index("DEVICE")] == "packet", text


def test_status_shows_the_configuration_at_start_and_after_sighup(four):
    """Started from a file with `query-interval 30`, `vlan 20:no-snooping` and `h3:query-guard`,
    the status (text and JSON) shows them; after SIGHUP with `query-interval 60`,
    `flood-unregistered`, `vlan 10:no-snooping` and `h1:query-guard` instead, it shows those."""
    path = write_config(four, START_FILE)
    sw = four.start_switch("--config", path, only=[])
    check_configuration(sw, 30, False, unsnooped=20, snooped=10, guarded="h3", unguarded="h1")

    write_config(four, EDITED_FILE)
    sw.send_signal(signal.SIGHUP)
    sw.wait_status(lambda s: s["configuration"]["timers"]["query_interval"] == 60, timeout=5,
                   what="query interval 60 after SIGHUP")
    check_configuration(sw, 60, True, unsnooped=10, snooped=20, guarded="h1", unguarded="h3")


def test_sighup_changing_a_port_flag_keeps_its_counters_and_memberships(four):
    """h2 joins a group and receives traffic; `port h2` becomes `port h2:fast-leave` and the
    switch gets SIGHUP: the status shows fast-leave on h2, h2's RX count went on from where it
    was (not back to 0), its membership stayed, and the group still reaches it."""
    path = write_config(four, "port h1\nport h2\nport h3\nport h4\n")
    sw = four.start_switch("--config", path, only=[])
    h1, h2 = four["h1"], four["h2"]
    assert h2.ping(h1.addr) and h1.ping(h2.addr)
    rx = h2.join(G, PORT)
    before = port_entry(sw.status(), "h2")
    assert before["rx_frames"] > 0 and before["fast_leave"] is False, before

    write_config(four, "port h1\nport h2:fast-leave\nport h3\nport h4\n")
    sw.send_signal(signal.SIGHUP)
    st = sw.wait_status(lambda s: s if port_entry(s, "h2")["fast_leave"] else None, timeout=5,
                        what="fast-leave on h2 after SIGHUP")
    after = port_entry(st, "h2")
    assert after["rx_frames"] >= before["rx_frames"], f"h2's counters went back: {before} -> {after}"
    assert after["tx_frames"] >= before["tx_frames"], f"h2's counters went back: {before} -> {after}"
    assert after["link"] == "up" and after["link_changes"] == before["link_changes"], after
    assert after["ifindex"] == before["ifindex"], after
    assert "h2" in members(st, G), f"h2's membership of {G} went: {st['groups']}"
    wait_until(lambda: "~h2(+fast-leave)" in sw.log(20000), timeout=3, what="the log naming h2's flag change")
    marker = random_marker("inplace")
    sent = h1.send_udp(G, PORT, count=10, marker=marker)
    assert sorted(rx.collect(10, timeout=3, marker=marker)) == sorted(sent)
    table = rows(sw.status_text())
    header = next(r for r in table if r[:2] == ["PORT", "IFINDEX"])
    row = next(r for r in table if r[:1] == ["h2"] and len(r) == len(header))
    assert row[header.index("FAST-LEAVE")] == "yes", f"fast-leave not shown in h2's row: {row}"


def test_a_tap_port_shows_its_interface_index(four):
    """A `:tap` port's IFINDEX is the one the kernel gave the TAP device, in JSON and text."""
    sw = four.start_switch("--port", "stap0:tap")
    index = four.switch_ifindex("stap0")
    st = sw.status()
    tap = port_entry(st, "stap0")
    assert (tap["ifindex"], tap["attachment"]) == (index, "tap"), tap
    row = next(r for r in rows(sw.status_text()) if r[:1] == ["stap0"])
    assert row[1:3] == [str(index), "tap"], row
