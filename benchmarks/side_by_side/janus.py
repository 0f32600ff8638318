"""Janus's side: the generated configuration (HTTP transport and the streaming plugin
only, one VP8 RTP mountpoint) for Debian's Janus 1.1.2."""

from __future__ import annotations

from pathlib import Path

MOUNTPOINT = 1
JANUS_PLUGINS = "/usr/lib/x86_64-linux-gnu/janus/plugins"
JANUS_TRANSPORTS = "/usr/lib/x86_64-linux-gnu/janus/transports"


def janus_config(folder: Path, http_port: int, rtp_port: int, event_loops: int) -> Path:
    """A Janus configuration: HTTP transport and the streaming plugin only, one VP8 RTP
    mountpoint on ``rtp_port``; ``event_loops`` 0 is Janus's default (a loop per handle)."""
    folder.mkdir(parents=True, exist_ok=True)
    plugins = sorted(p.name for p in Path(JANUS_PLUGINS).glob("libjanus_*.so") if "streaming" not in p.name)
    transports = sorted(p.name for p in Path(JANUS_TRANSPORTS).glob("libjanus_*.so") if "http" not in p.name)
    loops = f"\tevent_loops = {event_loops}\n" if event_loops else ""
    (folder / "janus.jcfg").write_text(
        "general: {\n"
        f'\tconfigs_folder = "{folder}"\n\tplugins_folder = "{JANUS_PLUGINS}"\n'
        f'\ttransports_folder = "{JANUS_TRANSPORTS}"\n\tdebug_level = 2\n\tsession_timeout = 0\n{loops}'
        "}\n"
        "media: {\n\trtp_port_range = \"30000-39999\"\n}\n"
        "nat: {\n\tnice_debug = false\n\tignore_mdns = true\n}\n"
        f'plugins: {{\n\tdisable = "{",".join(plugins)}"\n}}\n'
        f'transports: {{\n\tdisable = "{",".join(transports)}"\n}}\n'
        "events: {\n\tbroadcast = false\n}\n")
    (folder / "janus.transport.http.jcfg").write_text(
        "general: {\n\tjson = \"compact\"\n\tbase_path = \"/janus\"\n\thttp = true\n"
        f"\tport = {http_port}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\n"
        "admin: {\n\tadmin_http = false\n}\n")
    (folder / "janus.plugin.streaming.jcfg").write_text(
        "general: {\n}\n"
        "bench: {\n\ttype = \"rtp\"\n"
        f"\tid = {MOUNTPOINT}\n\tdescription = \"bench\"\n"
        "\tmedia = (\n\t\t{\n\t\t\ttype = \"video\"\n\t\t\tmid = \"v\"\n"
        f"\t\t\tport = {rtp_port}\n\t\t\tpt = 96\n\t\t\tcodec = \"vp8\"\n\t\t}}\n\t)\n}}\n")
    return folder / "janus.jcfg"
