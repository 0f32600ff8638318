"""What the live fan-out benchmark prints: one line per step, the tables, the targets."""

from __future__ import annotations

from typing import Callable, Optional

from fanout.results import SATURATED

__all__ = ["fmt", "print_metrics_cost", "print_row", "print_summary", "table"]


def fmt(value: Optional[float], spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)



COLUMNS = [  # header, width, row -> text
    ("N", 5, lambda r: str(r["viewers"]) + ("*" if r["box_pct"] >= SATURATED else " ")),
    ("cpu%", 6, lambda r: fmt(r["cpu_pct"])),
    ("us/pkt", 7, lambda r: fmt(r["us_per_packet"])),
    ("m.us/pkt", 9, lambda r: fmt(r["marginal_us_per_packet"])),
    ("%/view", 7, lambda r: fmt(r["cpu_pct_per_viewer"], ".2f")),
    ("m.%/view", 9, lambda r: fmt(r["marginal_pct_per_viewer"], ".2f")),
    ("fps med", 8, lambda r: fmt(r["fps_median"])),
    ("fps min", 8, lambda r: fmt(r["fps_min"])),
    ("kbps med", 9, lambda r: fmt(r["kbps_median"], ".0f")),
    ("p50 ms", 7, lambda r: fmt(r["delay_ms_p50"], ".2f")),
    ("p99 ms", 7, lambda r: fmt(r["delay_ms_p99"], ".2f")),
    ("drops", 6, lambda r: fmt(r["drops"], "d")),
    ("in loss%", 9, lambda r: fmt(r.get("ingress_loss_pct"))),
    ("box%", 5, lambda r: fmt(r["box_pct"], ".0f")),
    ("other%", 7, lambda r: fmt(r["other_cpu_pct"], ".0f")),
    ("picture", 8, lambda r: "-" if not r["picture"] else
        ("ok" if r["picture"]["ok"] else "BAD") + f" {r['picture']['decoded_fps']:.0f}"),
    ("e2e ms", 7, lambda r: fmt((r["picture"] or {}).get("e2e_ms_p50"), ".0f")),
    ("x base", 7, lambda r: fmt(r.get("x_baseline"), ".0f")),
]


def table(rows: list[dict], baseline: bool = False) -> str:
    skip = {"p50 ms", "p99 ms", "drops", "x base"} if baseline else set()
    # the baseline has no packets_in counter, so no ingress loss % (its drops are in JSON)
    skip |= {"in loss%"} if baseline else set()
    cols = [c for c in COLUMNS if c[0] not in skip]
    lines = ["".join(h.rjust(w + 1) for h, w, _ in cols)]
    lines += ["".join(f(r).rjust(w + 1) for _, w, f in cols) for r in rows]
    return "\n".join(lines)


def print_row(row: dict) -> None:
    pub = row["publisher"]
    pic = row["picture"]
    sys_share = row["server_system_share"]
    print(f"  {row['server']:9} N={row['viewers']:<4} cpu {row['cpu_pct']:5.1f}% "
          f"(kernel {fmt(sys_share and sys_share * 100, '.0f')}%)  "
          f"fps med {fmt(row['fps_median'])} min {fmt(row['fps_min'])}  "
          f"p99 {fmt(row['delay_ms_p99'], '.2f')} ms  box {row['box_pct']:.0f}%  "
          f"viewer procs {row['viewer_processes_cpu_pct']:.0f}%  other {row['other_cpu_pct']:.0f}%"
          f"  udp drops srv/view {row['server_udp_drops']}/{row['viewer_udp_drops']}"
          f"  publisher {pub['cpu_pct']:.0f}% "
          f"{pub['fps']:.1f} fps {pub['video_kbps']:.0f}+{pub['audio_kbps']:.0f} kbit/s"
          + (f"  picture {'ok' if pic['ok'] else 'BAD: ' + ', '.join(pic['problems'])} "
             f"({pic['decoded_fps']:.1f} fps decoded, e2e p50/p99 "
             f"{fmt(pic.get('e2e_ms_p50'), '.0f')}/{fmt(pic.get('e2e_ms_p99'), '.0f')} ms)"
             if pic else "")
          + (f"  connect errors: {row['connect_errors']}" if row["connect_errors"] else ""),
          flush=True)


def print_summary(rows: list[dict], base_rows: list[dict], s: dict) -> None:
    p = s["publisher"]
    print(f"\npublisher (median over steps): {p['fps']:.1f} fps, video {p['video_kbps']:.0f} "
          f"kbit/s ({p['video_pps']:.0f} pkt/s), audio {p['audio_kbps']:.0f} kbit/s "
          f"({p['audio_pps']:.0f} pkt/s); server codecs {s['server_codecs']}")
    print("\nStagepass (N = viewers incl. the decoding sample viewer; N=0 publisher only; "
          f"* = machine >= {SATURATED:.0f}% busy)")
    print(table(rows))
    if base_rows:
        print("\nBaseline: stock aiortc decode + MediaRelay + one encoding sender per viewer")
        print(table(base_rows, baseline=True))
        used = ",".join(map(str, s["baseline_rows_used"]))
        print(f"baseline marginal CPU per viewer: {fmt(s['baseline_marginal_pct_per_viewer'], '.2f')}"
              f"% of a core (median over N={used}, the rows where every viewer got >= 90% of "
              "the frames when there are any)")
    t = s.get("targets")
    if t:
        def check(value: Optional[float], ok: Callable[[float], bool]) -> str:
            return "n/a" if value is None else ("met" if ok(value) else "NOT met")

        n = s["reference_viewers"]
        print(f"\ntargets at N={n}:")
        v = t["us_per_packet"]["value"]
        print(f"  server CPU per forwarded packet {fmt(v)} us (target <= 30): "
              f"{check(v, lambda x: x <= 30)}; marginal {fmt(t['marginal_us_per_packet']['value'])} us")
        v = t["x_less_cpu_per_viewer"]["value"]
        print(f"  baseline / Stagepass marginal CPU per viewer {fmt(v, '.0f')}x (target >= 40x): "
              f"{check(v, lambda x: x >= 40)}")
        v = t["delay_ms_p99"]["value"]
        print(f"  in-server delay p99 {fmt(v, '.2f')} ms (target < 10): {check(v, lambda x: x < 10)}")
        if s["reference_caveats"]:
            print(f"  caution, during the N={n} step: " + "; ".join(s["reference_caveats"]))


def print_metrics_cost(cost: list[dict]) -> None:
    print("\nmetrics off vs on (STAGEPASS_METRICS_TOKEN set, /metrics scraped every second; target: "
          "on/off <= 1.02)")
    print(f"{'N':>5} {'cpu% off':>9} {'cpu% on':>8} {'us/pkt off':>11} {'us/pkt on':>10} {'on/off':>7} "
          f"{'scrape ms':>10}")
    for c in cost:
        print(f"{c['viewers']:>5} {fmt(c['cpu_pct_off']):>9} {fmt(c['cpu_pct_on']):>8} "
              f"{fmt(c['us_per_packet_off']):>11} {fmt(c['us_per_packet_on']):>10} "
              f"{fmt(c['ratio'], '.3f'):>7} {fmt(c['scrape_ms_median'], '.2f'):>10}")
