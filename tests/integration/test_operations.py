"""Operating the switch while it runs (topologies/four-hosts.topo): a TAP port whose kernel
side is moved into a host namespace, a port's interface deleted and created again (a VM
restarted), ports added and removed through the control socket, `fdb flush`, static
memberships (`mdb add/del`) and `mdb flush`, and the errors of those commands.

Delivery is checked with a socket that joined the group; non-delivery with a capture that
saw no frame while a member did receive.
"""

from __future__ import annotations

import re

import pytest

from kernel_features import needs
from lab import (
    Capture,
    Receiver,
    macs,
    member_entry,
    members,
    port_entry,
    random_marker,
    send_udp,
    sh,
    tcp_transfer,
    udp_frame,
)

G1, G2 = "239.6.6.1", "239.6.6.2"
PORT = 5070
TCP_BYTES = 8 << 20


def port_names(status: dict) -> list[str]:
    return [p["name"] for p in status["ports"]]


# ---- TAP port ------------------------------------------------------------------------
@needs("tun", "a TAP port")
def test_tap_port_in_a_host_namespace_joins_pings_and_carries_tcp(four):
    """`--port vm1:tap`: the switch creates TAP device vm1 in its namespace; moved into a
    host namespace, addressed and up, that stack is a host on the switch: it joins a group
    with a socket and receives 20/20 of a veth host's datagrams (a non-member veth host
    sees none), its own group datagrams reach a joined veth host, ping works both ways, and
    TCP with default offloads (GSO frames above the MTU leave the TAP) completes both ways."""
    sw = four.start_switch("--port", "vm1:tap")
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    st = sw.status()
    assert "vm1" in port_names(st), f"TAP port vm1 not in status: {port_names(st)}"
    assert four.has_switch_interface("vm1"), "the switch did not create TAP device vm1 in its namespace"

    vm_ns = four.namespace("vm1")
    vm_addr, vm_mac = "192.0.2.11", "02:00:00:00:00:11"
    sh("ip", "-n", four.sw_ns, "link", "set", "vm1", "netns", vm_ns)
    sh("ip", "-n", vm_ns, "link", "set", "vm1", "address", vm_mac)
    sh("ip", "-n", vm_ns, "addr", "add", f"{vm_addr}/24", "dev", "vm1")
    sh("ip", "-n", vm_ns, "link", "set", "vm1", "up")
    sh("ip", "-n", vm_ns, "route", "add", "224.0.0.0/4", "dev", "vm1")
    sw.wait_status(lambda s: port_entry(s, "vm1")["link"] == "up", timeout=3,
                   what="TAP port vm1 up after its device moved to the host namespace")

    def vm_ping(addr: str) -> bool:
        return sh("ip", "netns", "exec", vm_ns, "ping", "-c", "1", "-W", "2", "-q", addr, check=False).returncode == 0

    assert vm_ping(h1.addr), "the TAP host cannot ping h1"
    assert h2.ping(vm_addr), "h2 cannot ping the TAP host"
    sw.wait_status(lambda s: macs(s).get((1, vm_mac)) == "vm1", timeout=3, what="the TAP host's MAC learned on vm1")

    # The TAP host joins G1; h4 sends; h3 (not a member) must see nothing of it.
    rx_vm = Receiver(vm_ns, G1, PORT, ifname="vm1")
    four._closables.append(rx_vm)
    sw.wait_status(lambda s: "vm1" in members(s, G1), timeout=5, what="vm1 listed as member of G1")
    cap3 = h3.capture()
    marker = random_marker("tap-in")
    sent = h4.send_udp(G1, PORT, count=20, marker=marker)
    got = rx_vm.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"the TAP host received {len(got)} of 20 datagrams of {G1}"
    cap3.stop(settle=0.2)
    assert cap3.to_group(G1) == [], f"non-member h3 saw {len(cap3.to_group(G1))} frames to {G1}"

    # The other way: the TAP host sends to a group h1 joined.
    rx1 = h1.join(G2, PORT)
    marker = random_marker("tap-out")
    sent = send_udp(vm_ns, G2, PORT, count=20, marker=marker, src_addr=vm_addr)
    got = rx1.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"h1 received {len(got)} of 20 datagrams the TAP host sent to {G2}"

    # TCP both ways with default offloads; the TAP host's outgoing frames show GSO at work.
    cap_vm = Capture(vm_ns, "vm1", label="vm1")
    four._closables.append(cap_vm)
    to_vm = tcp_transfer(vm_ns, vm_addr, h1.ns, TCP_BYTES, port=5301)
    assert to_vm.ok, f"TCP h1 -> TAP host: {to_vm}"
    from_vm = tcp_transfer(h2.ns, h2.addr, vm_ns, TCP_BYTES, port=5302)
    assert from_vm.ok, f"TCP TAP host -> h2: {from_vm}"
    cap_vm.stop()
    biggest = max((f.orig_len for f in cap_vm.outgoing()), default=0)
    print(f"h1 -> vm: {to_vm}; vm -> h2: {from_vm}; largest frame the TAP host sent: {biggest}")
    assert biggest > 1514, "the TAP host never sent a frame larger than the MTU: GSO was not exercised"
    assert sw.alive()


# ---- interface deleted and created again ------------------------------------------------
def test_port_interface_deleted_and_recreated_serves_again(four):
    """Delete h1's veth pair while the switch runs: status shows h1 down, without MAC
    entries or memberships, and the other ports keep working; create the pair again under
    the same name (MAC, address, up): without a restart the port rebinds to the new
    interface (status: link up, the new ifindex, link_changes risen), h1 pings h4 and
    receives a group again after re-joining."""
    sw = four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    assert h1.ping(h4.addr)
    rx1 = h1.join(G1, PORT)
    rx2 = h2.join(G1, PORT)
    marker = random_marker("before")
    sent = h4.send_udp(G1, PORT, count=20, marker=marker)
    assert sorted(rx1.collect(20, timeout=3, marker=marker)) == sorted(sent)
    before = port_entry(sw.status(), "h1")
    assert before["link"] == "up" and before["ifindex"] == four.switch_ifindex("h1"), before
    old_ifindex, changes_before = before["ifindex"], before["link_changes"]

    four.delete_host_link("h1")
    try:
        st = sw.wait_status(
            lambda s: s if (port_entry(s, "h1")["link"] == "down" and "h1" not in members(s, G1)
                            and not any(m["port"] == "h1" for m in s["macs"])) else None,
            timeout=3, what="h1 down, its memberships and MAC entries flushed, after its interface was deleted")
        assert "h1" in port_names(st), "the port disappeared from the status when its interface was deleted"
        marker = random_marker("gone")
        sent = h4.send_udp(G1, PORT, count=20, marker=marker)
        got = rx2.collect(20, timeout=3, marker=marker)
        assert sorted(got) == sorted(sent), f"h2 received {len(got)} of 20 while h1's interface was gone"
        assert h3.ping(h4.addr), "h3 cannot ping h4 while h1's interface was gone"
    finally:
        if not four.has_switch_interface("h1"):
            four.link_host("h1")
    rx1.close()
    new_ifindex = four.switch_ifindex("h1")
    assert new_ifindex != old_ifindex, "the re-created interface got the old ifindex; the test proves nothing"
    st = sw.wait_status(
        lambda s: s if (port_entry(s, "h1")["link"] == "up" and port_entry(s, "h1")["ifindex"] == new_ifindex) else None,
        timeout=5, what=f"h1 up again on the new interface (ifindex {new_ifindex})")
    p1 = port_entry(st, "h1")
    assert p1["link_changes"] > changes_before, f"link_changes did not rise: {changes_before} -> {p1['link_changes']}"
    assert sw.alive(), "the switch exited"
    assert h1.ping(h4.addr), "h1 cannot ping h4 through its re-created interface"
    rx1 = h1.join(G1, PORT)
    marker = random_marker("after")
    sent = h4.send_udp(G1, PORT, count=20, marker=marker)
    got = rx1.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"h1 received {len(got)} of 20 after its interface came back"
    assert len(rx2.collect(20, timeout=3, marker=marker)) == 20, "h2 stopped receiving"


def test_mtu_change_is_followed_and_counted(four):
    """Raise the MTU of h1's switch-side interface and of the host side: the switch logs and
    counts the change (link_changes rises), the port stays up, and frames larger than the
    old MTU cross it (a 4000-byte ping, unfragmented)."""
    sw = four.start_switch()
    h1, h4 = four["h1"], four["h4"]
    assert h1.ping(h4.addr)
    before = port_entry(sw.status(), "h1")["link_changes"]
    for ns, dev in ((four.sw_ns, "h1"), (four.sw_ns, "h4"), (h1.ns, "eth0"), (h4.ns, "eth0")):
        sh("ip", "-n", ns, "link", "set", dev, "mtu", "9000")
    st = sw.wait_status(lambda s: s if port_entry(s, "h1")["link_changes"] > before else None,
                        timeout=3, what="h1's MTU change counted")
    assert port_entry(st, "h1")["link"] == "up"
    out = sh("ip", "netns", "exec", h1.ns, "ping", "-c", "2", "-W", "2", "-M", "do", "-s", "4000", h4.addr, check=False)
    assert out.returncode == 0, f"a 4000-byte unfragmented ping did not cross after the MTU change: {out.stdout}{out.stderr}"
    assert sw.alive()
    assert "MTU 1500 -> 9000" in sw.log()


# ---- ports added and removed at run time -------------------------------------------------
def test_port_add_then_del_at_run_time(four):
    """`port add h4` on a switch started with h1..h3: status lists h4 (up), h4 pings h1 and
    h2 and receives a group it joins. `port del h4`: status no longer lists it, its MAC
    entry and membership are gone, a broadcast and the group's datagrams no longer reach
    h4's wire while h1..h3 keep working; `port add h4` again serves again."""
    sw = four.start_switch(only=["h1", "h2", "h3"])
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    assert "h4" not in port_names(sw.status())
    r = sw.command("port", "add", "h4")
    assert r.returncode == 0, f"`port add h4` exited {r.returncode}: {r.stderr.strip()}"
    st = sw.wait_status(lambda s: s if "h4" in port_names(s) and port_entry(s, "h4")["link"] == "up" else None,
                        timeout=3, what="h4 listed and up after `port add h4`")
    assert port_names(st)[:3] == ["h1", "h2", "h3"], port_names(st)
    assert h4.ping(h1.addr) and h4.ping(h2.addr), "the added port's host cannot ping the others"
    sw.wait_status(lambda s: macs(s).get((1, h4.mac)) == "h4", timeout=3, what="h4's MAC learned on h4")
    rx4 = h4.join(G1, PORT)
    rx2 = h2.join(G1, PORT)
    marker = random_marker("added")
    sent = h1.send_udp(G1, PORT, count=20, marker=marker)
    got = rx4.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"h4 (added at run time) received {len(got)} of 20 datagrams of {G1}"

    r = sw.command("port", "del", "h4")
    assert r.returncode == 0, f"`port del h4` exited {r.returncode}: {r.stderr.strip()}"
    st = sw.status()
    assert "h4" not in port_names(st), f"h4 still listed after `port del h4`: {port_names(st)}"
    assert [m for m in st["macs"] if m["port"] == "h4"] == [], f"MAC entries left on h4: {st['macs']}"
    assert all(m["port"] != "h4" for g in st["groups"] for m in g["members"]), f"memberships left on h4: {st['groups']}"
    assert members(st, G1) == {"h2"}, st["groups"]

    cap4, cap3 = h4.capture(), h3.capture()
    m_group, m_bcast = random_marker("after-del"), random_marker("bcast")
    sent = h1.send_udp(G1, PORT, count=20, marker=m_group)
    got = rx2.collect(20, timeout=3, marker=m_group)
    assert sorted(got) == sorted(sent), f"h2 received {len(got)} of 20 after h4's port was removed"
    h1.send_frames([udp_frame(h1.mac, "ff:ff:ff:ff:ff:ff", h1.addr, "192.0.2.255", 9, m_bcast)])
    cap3.wait_for(lambda f: m_bcast in f.data, timeout=3, what="h1's broadcast")
    cap4.stop(settle=0.2)
    leaked = cap4.with_marker(m_group) + cap4.with_marker(m_bcast)
    assert leaked == [], f"removed port h4 still got {len(leaked)} frames: {leaked[:3]}"
    assert h2.ping(h3.addr), "h2 cannot ping h3 after h4's port was removed"

    r = sw.command("port", "add", "h4")
    assert r.returncode == 0, f"second `port add h4` exited {r.returncode}: {r.stderr.strip()}"
    sw.wait_status(lambda s: "h4" in port_names(s) and port_entry(s, "h4")["link"] == "up", timeout=3,
                   what="h4 back after the second `port add`")
    assert h4.ping(h3.addr), "h4 cannot ping h3 after being added again"


def test_fdb_flush_empties_the_mac_table(four):
    """After pings every host's MAC is learned; `fdb flush` empties the table at once;
    the next pings learn the stations again and still work."""
    sw = four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    assert h1.ping(h2.addr) and h3.ping(h4.addr)
    expected = {(1, h.mac): h.name for h in (h1, h2, h3, h4)}
    sw.wait_status(lambda s: all(macs(s).get(k) == v for k, v in expected.items()), timeout=3,
                   what="all four MACs learned")
    r = sw.command("fdb", "flush")
    assert r.returncode == 0, f"`fdb flush` exited {r.returncode}: {r.stderr.strip()}"
    st = sw.status()
    assert st["macs"] == [], f"MAC table not empty right after `fdb flush`: {st['macs']}"
    assert h1.ping(h2.addr), "h1 cannot ping h2 after `fdb flush`"
    sw.wait_status(lambda s: macs(s).get((1, h1.mac)) == "h1" and macs(s).get((1, h2.mac)) == "h2", timeout=3,
                   what="h1 and h2 learned again")


def test_static_membership_add_del_and_mdb_flush(four):
    """`mdb add h3 G`: status lists h3 as a static member (is_static true) and h3's wire
    gets the group's frames although h3 never joined, while non-member h2 sees none.
    `mdb del h3 G`: h3 sees none while the joined h1 receives. `mdb flush`: the learned
    membership of h1 goes, the static one of h3 stays (and still delivers)."""
    sw = four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx1 = h1.join(G1, PORT)
    r = sw.command("mdb", "add", "h3", G1)
    assert r.returncode == 0, f"`mdb add h3 {G1}` exited {r.returncode}: {r.stderr.strip()}"
    st = sw.wait_status(lambda s: s if "h3" in members(s, G1) else None, timeout=3, what="h3 static member of G1")
    e3, e1 = member_entry(st, G1, "h3"), member_entry(st, G1, "h1")
    assert e3["is_static"] is True, f"h3's entry is not static: {e3}"
    assert e1["is_static"] is False, f"h1's learned entry claims to be static: {e1}"

    cap3, cap2 = h3.capture(), h2.capture()
    marker = random_marker("static")
    sent = h4.send_udp(G1, PORT, count=20, marker=marker)
    got = rx1.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"joined h1 received {len(got)} of 20"
    cap3.wait_for(lambda f: marker in f.data, count=20, timeout=3, what=f"frames to {G1} on static member h3")
    cap2.stop(settle=0.2)
    cap3.stop()
    assert len(cap3.udp_to(G1, PORT, marker)) == 20, f"h3 saw {len(cap3.udp_to(G1, PORT, marker))} of 20"
    assert cap2.to_group(G1) == [], f"non-member h2 saw {len(cap2.to_group(G1))} frames to {G1}"

    r = sw.command("mdb", "del", "h3", G1)
    assert r.returncode == 0, f"`mdb del h3 {G1}` exited {r.returncode}: {r.stderr.strip()}"
    st = sw.status()
    assert members(st, G1) == {"h1"}, f"members after `mdb del h3`: {members(st, G1)}"
    cap3 = h3.capture()
    marker = random_marker("deleted")
    sent = h4.send_udp(G1, PORT, count=20, marker=marker)
    got = rx1.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"joined h1 received {len(got)} of 20 after `mdb del`"
    cap3.stop(settle=0.2)
    assert cap3.to_group(G1) == [], f"h3 still saw {len(cap3.to_group(G1))} frames to {G1} after `mdb del`"

    r = sw.command("mdb", "add", "h3", G1)
    assert r.returncode == 0, f"second `mdb add h3 {G1}` exited {r.returncode}: {r.stderr.strip()}"
    r = sw.command("mdb", "flush")
    assert r.returncode == 0, f"`mdb flush` exited {r.returncode}: {r.stderr.strip()}"
    st = sw.status()
    assert members(st, G1) == {"h3"}, f"after `mdb flush` expected only the static h3, got {members(st, G1)}"
    assert member_entry(st, G1, "h3")["is_static"] is True
    cap3, cap1 = h3.capture(), h1.capture()
    marker = random_marker("flushed")
    h4.send_udp(G1, PORT, count=20, marker=marker)
    cap3.wait_for(lambda f: marker in f.data, count=20, timeout=3, what=f"frames to {G1} on static member h3")
    cap1.stop(settle=0.2)
    assert cap1.with_marker(marker) == [], \
        f"h1's learned membership was flushed but h1 still saw {len(cap1.with_marker(marker))} frames"


# command, a word the one line of stderr must name
ERRORS = {
    "port-add-existing": (["port", "add", "h1"], "h1"),
    "port-del-unknown": (["port", "del", "nosuch0"], "nosuch0"),
    "mdb-add-unknown-port": (["mdb", "add", "nosuch0", G1], "nosuch0"),
    "port-add-missing-interface": (["port", "add", "nosuch0"], "nosuch0"),
    "port-add-bad-spec": (["port", "add", "h4:bogus"], "bogus"),
    "mdb-add-not-a-group": (["mdb", "add", "h1", "192.0.2.77"], "192.0.2.77"),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_bad_run_time_command_fails_with_one_line_and_switch_keeps_running(four, case):
    """A refused control command (a port that exists already, an unknown port for `port del`
    or `mdb add`, a missing interface, a bad spec, an address that is no group) exits
    non-zero with exactly one line on stderr naming what is wrong; the switch keeps running
    with its ports and memberships unchanged and still forwards."""
    sw = four.start_switch(only=["h1", "h2", "h3"])
    args, subject = ERRORS[case]
    before = sw.status()
    r = sw.command(*args)
    lines = r.stderr.rstrip("\n").split("\n")
    assert r.returncode != 0, f"`snoopswitch {' '.join(args)}` exited 0 (stderr: {r.stderr!r})"
    assert r.stderr.strip() and len(lines) == 1, f"expected one line on stderr, got:\n{r.stderr}"
    assert subject in r.stderr, f"the error does not name {subject!r}: {r.stderr.strip()}"
    assert not re.search(r"(?i)fatal error|stack trace|backtrace", r.stderr), r.stderr
    assert sw.alive(), f"the switch exited after `{' '.join(args)}`; log:\n{sw.log()}"
    after = sw.status()
    assert port_names(after) == port_names(before), f"ports changed: {port_names(before)} -> {port_names(after)}"
    assert members(after, G1) == members(before, G1)
    assert four["h1"].ping(four["h2"].addr), "h1 cannot ping h2 after the refused command"
