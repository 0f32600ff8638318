"""A step's result row from its readings, the per-viewer marginals, and the comparison
with the baseline and with the project's targets."""

from __future__ import annotations

from typing import Any, Optional

from common.measure import median

__all__ = ["SATURATED", "add_marginals", "caveats", "full_stream", "keeping_up", "metrics_cost",
           "summarize", "summary"]

SATURATED = 90.0  # machine busy % above which a row is marked: the load generator competes


def summarize(first: tuple, last: tuple, slices: list[float], box: float, fps: int) -> dict:
    """One result row from the snapshots taken at both ends of the window."""
    (srv0, pub0, *views0), (srv1, pub1, *views1) = first, last
    dt = pub1["t"] - pub0["t"]
    cpu = median(slices) or 0.0
    fanouts0, fanouts1 = srv0.get("fanouts"), srv1.get("fanouts")

    def delta(key: str) -> Optional[int]:
        if not fanouts1:
            return None
        return sum(fanouts1[k][key] - fanouts0[k][key] for k in fanouts1)

    per_viewer: list[dict] = []
    for s0, s1 in zip(views0, views1):
        span = s1["t"] - s0["t"]
        for (v0, a0), (v1, a1) in zip(s0["viewers"], s1["viewers"]):
            per_viewer.append({
                "fps": (v1[2] - v0[2]) / span,
                "kbps": ((v1[1] - v0[1]) + (a1[1] - a0[1])) * 8 / span / 1000,
                "packets": (v1[0] - v0[0]) + (a1[0] - a0[0]),
            })
    received = sum(v["packets"] for v in per_viewer)
    packets_out = delta("packets_out")
    forwarded = packets_out if packets_out is not None else received
    picture = None
    if views1:  # the sample viewer is always the first
        s0, s1 = views0[0], views1[0]
        decoded_fps = (s1["decoded"] - s0["decoded"]) / (s1["t"] - s0["t"])
        problems = []
        if s1["backwards"] != s0["backwards"]:
            problems.append(f"{s1['backwards'] - s0['backwards']} numbers out of order")
        if decoded_fps < 0.8 * fps:
            problems.append(f"only {decoded_fps:.1f} fps decoded")
        if (s1["last_number"] or 0) <= (s0["last_number"] or 0):
            problems.append("numbers not advancing")
        picture = {"ok": not problems, "problems": problems, "decoded_fps": decoded_fps,
                   "last_number": s1["last_number"]}
        # made (publisher) to decoded (sample viewer): CLOCK_MONOTONIC is shared
        made = dict(pub1["captures"])
        latencies = sorted((t - made[number]) * 1000
                           for number, t in s1["new_frames"] if number in made)
        if latencies:
            picture["e2e_ms_p50"] = latencies[len(latencies) // 2]
            picture["e2e_ms_p99"] = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    fps_values = [v["fps"] for v in per_viewer]
    video_fanout = (fanouts1 or {}).get("video", {})
    pub = {k: [(pub1[k][i] - pub0[k][i]) / dt for i in (0, 1)] for k in ("video", "audio")}
    return {
        "window_s": dt,
        "cpu_pct": cpu * 100,
        "cpu_pct_mean": (sum(slices) / len(slices)) * 100 if slices else None,
        "cpu_slices_pct": [round(s * 100, 2) for s in slices],
        "box_pct": box * 100,
        "packets_out_per_s": forwarded / dt,
        "packets_out_source": "server" if packets_out is not None else "viewers",
        "packets_in_per_s": (delta("packets_in") or 0) / dt if fanouts1 else None,
        "us_per_packet": cpu / (forwarded / dt) * 1e6 if forwarded else None,
        "fps_median": median(fps_values), "fps_min": min(fps_values) if fps_values else None,
        "kbps_median": median([v["kbps"] for v in per_viewer]),
        "delay_ms_p50": video_fanout.get("delay_ms_p50"),
        "delay_ms_p99": video_fanout.get("delay_ms_p99"),
        "delays": {k: {q: v[q] for q in ("delay_ms_p50", "delay_ms_p99")}
                   for k, v in (fanouts1 or {}).items()},
        "drops": delta("dropped"),
        "keyframe_requests": srv1.get("keyframe_requests"),
        "server_codecs": srv1.get("codecs"),
        "picture": picture,
        "publisher": {"fps": (pub1["frames"] - pub0["frames"]) / dt,
                      "video_kbps": pub["video"][1] * 8 / 1000, "video_pps": pub["video"][0],
                      "audio_kbps": pub["audio"][1] * 8 / 1000, "audio_pps": pub["audio"][0]},
    }


def add_marginals(rows: list[dict]) -> None:
    """Per-viewer CPU: total / N, and marginal (cpu(N) - cpu(0)) / N against the idle row."""
    idle = next((r["cpu_pct"] for r in rows if r["viewers"] == 0), None)
    for r in rows:
        n = r["viewers"]
        r["cpu_pct_per_viewer"] = r["cpu_pct"] / n if n else None
        extra = r["cpu_pct"] - idle if idle is not None else None
        r["marginal_pct_per_viewer"] = extra / n if n and extra is not None else None
        pps = r["packets_out_per_s"]
        r["marginal_us_per_packet"] = (
            extra / 100 / pps * 1e6 if n and extra is not None and pps else None)



def keeping_up(row: dict, fps: int) -> bool:
    """Every viewer got at least 90% of the nominal frame rate: the server did all the work
    (a CPU-capped baseline that skips frames under-reports its cost per viewer)."""
    return row["fps_min"] is not None and row["fps_min"] >= 0.9 * fps


def full_stream(row: dict, fps: int) -> bool:
    """The server got (nearly) every packet of a full-rate publisher, so its CPU per viewer
    is the cost of the whole stream, not of the part it had time to read."""
    return (row["publisher"]["fps"] >= 0.9 * fps
            and (row.get("ingress_loss_pct") or 0) <= 1.0)


def caveats(row: dict, fps: int) -> list[str]:
    """Why a row's numbers may say more about the machine than about the server."""
    out = []
    if row["box_pct"] >= SATURATED:
        out.append(f"machine {row['box_pct']:.0f}% busy")
    if row["other_cpu_pct"] > 25:
        out.append(f"other processes {row['other_cpu_pct']:.0f}% of a core")
    if row["publisher"]["fps"] < 0.9 * fps:
        out.append(f"publisher starved ({row['publisher']['fps']:.1f} fps)")
    if (row.get("ingress_loss_pct") or 0) > 1:
        out.append(f"server lost {row['ingress_loss_pct']:.1f}% of the publisher's packets")
    if row["viewer_udp_drops"]:
        out.append(f"viewer sockets dropped {row['viewer_udp_drops']} packets")
    return out


def summary(rows: list[dict], base_rows: list[dict], ref_n: int, fps: int) -> dict:
    """Compare with the baseline and check the project's targets at ``ref_n`` viewers."""
    measured = [r for r in base_rows if r["viewers"] and r["marginal_pct_per_viewer"] is not None]
    complete = [r for r in measured if keeping_up(r, fps)] or measured
    base_pv = median([r["marginal_pct_per_viewer"] for r in complete])
    for r in rows:  # only where the server handled the whole stream
        m = r["marginal_pct_per_viewer"]
        ok = base_pv and m and m > 0 and full_stream(r, fps)
        r["x_baseline"] = base_pv / m if ok else None
    ref = next((r for r in rows if r["viewers"] == ref_n), None)
    publishers = [r["publisher"] for r in rows + base_rows]
    out: dict[str, Any] = {
        "reference_viewers": ref_n,
        "baseline_marginal_pct_per_viewer": base_pv,
        "baseline_rows_used": [r["viewers"] for r in complete],
        "publisher": {k: median([p[k] for p in publishers]) for k in publishers[0]},
        "server_codecs": next((r["server_codecs"] for r in rows if r["server_codecs"]), None),
    }
    if ref:
        out["targets"] = {
            "us_per_packet": {"value": ref["us_per_packet"], "target": "<= 30"},
            "marginal_us_per_packet": {"value": ref["marginal_us_per_packet"]},
            "x_less_cpu_per_viewer": {"value": ref["x_baseline"], "target": ">= 40"},
            "delay_ms_p99": {"value": ref["delay_ms_p99"], "target": "< 10"},
        }
        out["reference_caveats"] = caveats(ref, fps)
    return out


def metrics_cost(off_rows: list[dict], on_rows: list[dict]) -> list[dict]:
    """Server CPU per forwarded packet with metrics off and on (token set, scraped every
    second), per viewer count, and their ratio."""
    on = {r["viewers"]: r for r in on_rows}
    out = []
    for r in off_rows:
        m = on.get(r["viewers"])
        if m is None:
            continue
        off_us, on_us = r["us_per_packet"], m["us_per_packet"]
        out.append({"viewers": r["viewers"], "cpu_pct_off": r["cpu_pct"], "cpu_pct_on": m["cpu_pct"],
                    "us_per_packet_off": off_us, "us_per_packet_on": on_us,
                    "ratio": on_us / off_us if off_us and on_us else None,
                    "scrape_ms_median": m["scrape_ms_median"]})
    return out
