"""The human form of an explanation: compact tables, colour only when asked (the CLI asks when stdout is a tty).

Pure: the JSON of :mod:`ironlb.explain.core` in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ironlb.explain.core import REASON_TEXT

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}
MAX_CELL = 200  # a hostile label or message cannot blow a table up


class Painter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, style: str) -> str:
        if not self.colour or not text:
            return text
        return f"\x1b[{_COLOURS[style]}m{text}\x1b[0m"


def _clean(value: object) -> str:
    """One printable line: control characters (terminal escapes included) become '?'."""
    text = "-" if value is None or value == "" or value == [] else str(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]], paint: Painter) -> list[str]:
    """Aligned columns; each cell is (text, style or "")."""
    cells = [[(_clean(t), s) for t, s in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, (text, _) in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = ["  ".join(paint(h.ljust(w), "bold") for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        parts = []
        for i, (text, style) in enumerate(row):
            padded = text if i == len(row) - 1 else text.ljust(widths[i])
            parts.append(paint(padded, style) if style else padded)
        lines.append("  ".join(parts).rstrip())
    return lines


def _announcer(entry: Mapping[str, Any]) -> tuple[str, str]:
    parts = []
    l2 = entry.get("layer2")
    if l2 is not None:
        seen = l2.get("announcedBy")
        node = l2.get("node")
        if seen is not None:
            parts += [f"L2 {n}" for n in seen]
        elif node:
            parts.append(f"L2 {node}")
    bgp = entry.get("bgp")
    if bgp is not None:
        seen_bgp = bgp.get("announcedBy")
        nodes = [b["node"] for b in seen_bgp] if seen_bgp is not None else [
            r["node"] for r in bgp.get("nodes", ()) if r.get("reason") is None
        ]  # fmt: skip
        if nodes:
            parts.append("BGP " + ",".join(nodes))
    if not parts:
        return "nobody", "red" if entry.get("ingress") else ""
    return "; ".join(parts), "green"


def _why(entry: Mapping[str, Any]) -> tuple[str, str]:
    if entry.get("ignored"):
        return f"ignored: {entry['ignored']}", "dim"
    if not entry.get("ingress"):
        return entry.get("noIPReason", ""), "red"
    l2 = entry.get("layer2")
    if l2 is not None and l2.get("reason"):
        reason = l2["reason"]
        return f"not announced over L2: {reason} ({REASON_TEXT.get(reason, reason)})", "yellow"
    return entry.get("poolReason", ""), ""


def services_table(result: Mapping[str, Any], paint: Painter) -> list[str]:
    rows = []
    for key, entry in result["services"].items():
        ip = ", ".join(entry.get("ingress") or []) or "<none>"
        rows.append([
            (key, ""), (ip, "" if entry.get("ingress") else "red"), (entry.get("pool") or "-", ""),
            _announcer(entry), _why(entry),
        ])  # fmt: skip
    return table(["SERVICE", "IP", "POOL", "ANNOUNCED BY", "WHY"], rows, paint)


def _reason(reason: str | None) -> str:
    if reason is None:
        return ""
    return f"{reason}: {REASON_TEXT.get(reason, reason)}"


def detail(key: str, entry: Mapping[str, Any], paint: Painter) -> list[str]:
    """One Service in full: pool and why, every node's part, events, problems."""
    lines = [paint(key, "bold")]
    if entry.get("ignored"):
        return [*lines, f"  ignored: {_clean(entry['ignored'])}"]
    ips = ", ".join(entry.get("ingress") or [])
    if ips:
        lines.append(f"  IP {ips} from pool {_clean(entry.get('pool'))}: {_clean(entry.get('poolReason'))}")
    else:
        lines.append("  " + paint(f"no IP: {_clean(entry.get('noIPReason'))}", "red"))
    l2 = entry.get("layer2")
    if l2 is not None:
        head = f"  layer 2: elected {l2['node']}" if l2.get("node") else f"  layer 2: nobody ({_reason(l2['reason'])})"
        if l2.get("node"):
            head += " on " + (", ".join(l2["interfaces"]) or "all interfaces")
        if "announcedBy" in l2:
            head += f"; announced by {', '.join(l2['announcedBy']) or 'nobody'} (ServiceL2Status)"
        lines.append(_clean(head))
        rows = []
        for r in l2.get("nodes", ()):
            state = r["state"] + (f" #{r['rank']}" if "rank" in r else "")
            style = {"elected": "green", "standby": "", "excluded": "yellow"}.get(r["state"], "red")
            why = _reason(r.get("reason")) if r["state"] != "standby" else "lost the election (higher score or hash)"
            if r.get("detail"):
                why += f" ({r['detail']})"
            rows.append([(r["node"], ""), (state, style), (why, "")])
        if rows:
            lines += ["    " + line for line in table(["NODE", "STATE", "WHY"], rows, paint)]
    bgp = entry.get("bgp")
    if bgp is not None:
        lines.append("  BGP:")
        rows = []
        for r in bgp.get("nodes", ()):
            if r.get("reason") is None:
                rows.append([(r["node"], ""), ("announces", "green"), ("peers " + (", ".join(r["peers"]) or "-"), "")])
            else:
                rows.append([(r["node"], ""), ("no", "yellow"), (_reason(r["reason"]), "")])
        lines += ["    " + line for line in table(["NODE", "STATE", "WHY"], rows, paint)]
        for a in bgp.get("announcedBy") or ():
            lines.append(_clean(f"    ServiceBGPStatus: {a['node']} -> {', '.join(a['peers']) or 'no peer'}"))
    events = entry.get("events") or []
    if events:
        lines.append("  events:")
        rows = [
            [(e.get("last", ""), "dim"), (e["type"], "red" if e["type"] == "Warning" else ""), (e["reason"], ""),
             (e["message"] + (f" (x{e['count']})" if e.get("count", 1) != 1 else ""), "")]
            for e in events[-10:]
        ]  # fmt: skip
        lines += ["    " + line for line in table(["LAST", "TYPE", "REASON", "MESSAGE"], rows, paint)]
    return lines


def render(result: Mapping[str, Any], *, colour: bool = False, details: bool = False) -> str:
    """The explanation as text: the Services' table (each in full with ``details``), then configuration,
    membership, pools and problems."""
    paint = Painter(colour)
    lines: list[str] = []
    if details:
        for key, entry in result["services"].items():
            lines += [*detail(key, entry, paint), ""]
    elif result["services"]:
        lines += [*services_table(result, paint), ""]
    else:
        lines += ["no LoadBalancer Service", ""]
    comps = result.get("configuration") or []
    if comps:
        rows = [
            [(c["name"], ""), ("valid" if c["valid"] else ("unknown" if c["valid"] is None else "INVALID"),
              "green" if c["valid"] else "red"), (c.get("error") or "", "")]
            for c in comps
        ]  # fmt: skip
        lines += [*table(["COMPONENT", "CONFIG", "ERROR"], rows, paint), ""]
    membership = result.get("membership")
    if membership:
        rows = []
        for node, v in membership["views"].items():
            quorum = "yes" if v["quorum"] else ("unknown" if v["quorum"] is None else "NO")
            rows.append([(node, ""), (", ".join(v["alive"]), ""), (quorum, "green" if v["quorum"] else "red")])
        lines += [*table(["SPEAKER", "SEES ALIVE", "QUORUM"], rows, paint), ""]
    pools = result.get("pools") or {}
    if pools:
        rows = []
        for name, p in pools.items():
            usage = "-" if p["usage"] is None else f"{p['usage'] * 100:.0f}%"
            style = "red" if p["usage"] is not None and p["usage"] >= 1 else ""
            rows.append([(name, ""), (f"{p['used']}/{p['size']}", ""), (usage, style)])
        lines += [*table(["POOL", "USED", "USAGE"], rows, paint), ""]
    for problem in result.get("problems") or ():
        lines.append(paint("problem: ", "red") + _clean(problem))
    return "\n".join(lines).rstrip() + "\n"


def render_what_if(result: Mapping[str, Any], *, colour: bool = False) -> str:
    paint = Painter(colour)
    styles = {"losesIP": "red", "moves": "red", "poolChanges": "yellow", "announcerChanges": "yellow",
              "getsIP": "green", "unchanged": "dim"}  # fmt: skip
    rows = []
    for key, e in result["services"].items():
        b, a = e["before"], e["after"]
        before = ", ".join(b["ingress"]) or "<none>"
        after = ", ".join(a["ingress"]) or "<none>"
        note = e.get("reason", "")
        if e["change"] == "announcerChanges":
            bgp = f"{','.join(b['bgpNodes']) or '-'} -> {','.join(a['bgpNodes']) or '-'}"
            note = f"L2 {b['layer2Node'] or '-'} -> {a['layer2Node'] or '-'}; BGP {bgp}"
        elif e["change"] == "poolChanges":
            note = f"pool {b['pool']} -> {a['pool']}"
        rows.append([(key, ""), (e["change"], styles.get(e["change"], "")), (before, ""), (after, ""), (note, "")])
    lines = table(["SERVICE", "CHANGE", "BEFORE", "AFTER", "NOTE"], rows, paint)
    summary = ", ".join(f"{n} {change}" for change, n in sorted(result["summary"].items()))
    return "\n".join([*lines, "", f"summary: {summary or 'no Service'}"]) + "\n"
