"""What the steps' rows come to: medians over rounds, server CPU per forwarded packet net
of ingest, and the tables printed."""

from __future__ import annotations

import statistics
from typing import Optional


def starved(row: dict, rate: float) -> bool:
    """Viewers that got under 85% of the stream: the load generator (or the server) did
    not keep up, so packets out are undercounted and the row says nothing about CPU per
    packet. Such rows are left out of the medians and listed."""
    return bool(row["viewers"]) and (row["viewer_pps_median"] or 0) < 0.85 * rate


def medians(rows: list[dict]) -> dict[tuple[str, int], dict]:
    grouped: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        grouped.setdefault((r["server"], r["viewers"]), []).append(r)
    out = {}
    for key, group in grouped.items():
        out[key] = {k: statistics.median([g[k] for g in group if g.get(k) is not None] or [0])
                    for k in ("cpu_pct", "packets_out_per_s", "viewer_pps_min", "box_pct")}
        out[key]["rounds"] = len(group)
    return out


def us_per_packet(m: dict, server: str, n: int) -> Optional[float]:
    row, idle = m.get((server, n)), m.get((server, 0))
    if not row or not idle or not row["packets_out_per_s"]:
        return None
    return (row["cpu_pct"] - idle["cpu_pct"]) / 100 / row["packets_out_per_s"] * 1e6


def report(rows: list[dict], ns: list[int], servers: list[str], rate: float) -> dict:
    bad = [r for r in rows if starved(r, rate)]
    m = medians([r for r in rows if not starved(r, rate)])
    table = {n: {s: us_per_packet(m, s, n) for s in servers} for n in ns}
    fmt = lambda v: "-" if v is None else f"{v:.1f} us"  # noqa: E731
    print("\nServer CPU per forwarded packet, net of ingest (median of rounds):\n")
    base = "stagepass-base" in servers
    head = "| N viewers | " + " | ".join(servers) + " | Stagepass / Janus el=2 |"
    print(head + (" Stagepass / base |" if base else ""))
    print("|" + "---|" * (len(servers) + 2 + base))
    for n in ns:
        s, j, b = table[n].get("stagepass"), table[n].get("janus-el2"), table[n].get("stagepass-base")
        ratio = f"{s / j:.2f}x" if s and j else "-"
        line = f"| {n} | " + " | ".join(fmt(table[n][x]) for x in servers) + f" | {ratio} |"
        print(line + ((f" {s / b:.2f}x |" if s and b else " - |") if base else ""))
    print("\nRaw medians (server CPU % of a core, packets/s received by all viewers, slowest viewer pps):\n")
    print("| server | N | CPU % | packets/s out | slowest viewer pps | machine busy % | rounds |")
    print("|---|---|---|---|---|---|---|")
    for (server, n), r in sorted(m.items(), key=lambda kv: (kv[0][1], servers.index(kv[0][0]))):
        print(f"| {server} | {n} | {r['cpu_pct']:.1f} | {r['packets_out_per_s']:.0f} | "
              f"{r['viewer_pps_min']:.0f} | {r['box_pct']:.0f} | {r['rounds']} |")
    print(f"\nThe stream: {rate:.0f} packets/s.")
    for r in bad:
        print(f"Left out (viewers got {r['viewer_pps_median']:.0f} packets/s each): {r['server']} N={r['viewers']}")
    return {"stream_pps": rate, "left_out": bad, "us_per_packet": {str(n): v for n, v in table.items()},
            "medians": [{"server": k[0], "viewers": k[1], **v} for k, v in m.items()]}
