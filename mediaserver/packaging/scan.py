"""``RecordingSource``: the packager's first pass over a recording's media file.

The scan reads every packet once (demux only): it indexes the usable video packets
(monotonic dts; keyframe flags from the bitstream), learns the frame size from the first
decodable keyframe, remembers H.264 parameter sets, and feeds the audio to the
:class:`AudioTimeline`. A file cut short by a crash is read up to where it ends
(``input_error``). The second pass reads the same packets again by index
(:meth:`RecordingSource.packet_source`).
"""

from __future__ import annotations

import logging
from array import array
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import av

from mediaserver.packaging.audio import AudioTimeline
from mediaserver.packaging.h264 import ANNEXB_PREFIX, avcc_config, avcc_to_annexb, first_vcl_type, nal_units
from mediaserver.packaging.options import TB, TICKS, PackageOptions, PackagingError, StopCheck

__all__ = ["RecordingSource", "VideoIndex"]


class VideoIndex:
    """What the scan learnt about the video packets that are usable (monotonic dts),
    indexed 0..n-1 in demux order; ``ordinal`` is their position among all packets."""

    def __init__(self) -> None:
        self.pts = array("q")
        self.dts = array("q")
        self.key = bytearray()
        self.ordinal = array("q")

    def __len__(self) -> int:
        return len(self.pts)


class RecordingSource:
    """One recording folder's media file, as the packager reads it; ``stats`` collects
    the counters of the whole job."""

    def __init__(
        self,
        directory: Path,
        manifest: dict,
        options: PackageOptions,
        work: Path,
        check_stop: StopCheck,
        progress: Callable[[float], None],
        log: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        self.dir = directory
        self.manifest = manifest
        self.check_stop = check_stop
        self.progress = progress
        self.log = log
        self.stats: dict[str, Any] = {
            "encoders_created": 0, "frames_encoded": 0, "packets_copied": 0,
            "video_dropped_packets": 0, "corrupt_packets": 0,
        }
        self.input_error: Optional[str] = None
        self.video_stream: Optional[av.stream.Stream] = None
        self.audio_stream: Optional[av.stream.Stream] = None
        self.codec = ""
        self.avcc: Optional[tuple[int, list[bytes]]] = None
        self.vindex = VideoIndex()
        self.video_bytes = 0
        self.audio = AudioTimeline(work / "audio.adts", options.audio_bitrate_per_channel, options.aac_coder)
        self.width = self.height = 0
        self.sps_pps: dict[int, bytes] = {}

    def media_path(self) -> Path:
        name = self.manifest.get("file")
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise PackagingError(f"manifest names no media file in the folder: {name!r}")
        path = self.dir / name
        if not path.is_file():
            raise PackagingError(f"media file {name} is missing")
        return path

    def open(self) -> av.container.InputContainer:
        path = self.media_path()
        try:
            container = av.open(str(path), "r")
        except (av.FFmpegError, OSError) as exc:
            raise PackagingError(f"cannot read {path.name}: {exc}") from None
        video = [s for s in container.streams.video]
        audio = [s for s in container.streams.audio]
        self.video_stream = video[0] if video else None
        self.audio_stream = audio[0] if audio else None
        return container

    @staticmethod
    def ticks_of(value: Optional[int], tb: Fraction) -> Optional[int]:
        if value is None:
            return None
        return value * tb.numerator * TICKS // tb.denominator

    # -------------------------------------------------------------- scan
    def scan(self) -> None:
        container = self.open()
        try:
            self._scan(container)
        finally:
            container.close()
        self.audio.settle()

    def _scan(self, container: av.container.InputContainer) -> None:
        vs, as_ = self.video_stream, self.audio_stream
        if vs is None and as_ is None:
            raise PackagingError("the recording has no audio or video track")
        if vs is not None:
            self.codec = vs.codec_context.name
            if self.codec == "h264":
                self.avcc = avcc_config(vs.codec_context.extradata)
                if self.avcc:
                    for ps in self.avcc[1]:
                        self.sps_pps[ps[0] & 0x1F] = ANNEXB_PREFIX + ps
        size = max(1, self.media_path().stat().st_size)
        streams = [s for s in (vs, as_) if s is not None]
        vi = self.vindex
        ordinal = -1
        last_dts = None
        probe_decoder = None
        last_progress = 0.0
        try:
            for packet in container.demux(*streams):
                self.check_stop()
                if packet.size == 0:
                    continue
                if packet.pos is not None and packet.pos > 0:
                    frac = packet.pos / size
                    if frac - last_progress >= 0.01:
                        last_progress = frac
                        self.progress(20 * frac)
                if packet.stream is vs:
                    ordinal += 1
                    tb = packet.time_base
                    pts = self.ticks_of(packet.pts if packet.pts is not None else packet.dts, tb)
                    dts = self.ticks_of(packet.dts if packet.dts is not None else packet.pts, tb)
                    if pts is None or dts is None or packet.is_corrupt:
                        self.stats["corrupt_packets"] += 1
                        continue
                    if last_dts is not None and dts <= last_dts:
                        self.stats["video_dropped_packets"] += 1
                        continue
                    data = None
                    if self.codec == "h264":
                        data = self.annexb(packet)
                        key = first_vcl_type(data) == 5
                    elif self.codec == "vp8":
                        key = not (bytes(packet)[0] & 1)
                    else:
                        key = bool(packet.is_keyframe)
                    last_dts = dts
                    self.video_bytes += packet.size
                    vi.pts.append(pts)
                    vi.dts.append(dts)
                    vi.key.append(1 if key else 0)
                    vi.ordinal.append(ordinal)
                    if key and not self.width:
                        if probe_decoder is None:
                            probe_decoder = self.decoder()
                        self._probe_size(probe_decoder, packet, data)
                else:
                    self._scan_audio(packet)
        except (av.FFmpegError, OSError, EOFError) as exc:
            # a file cut by a crash: keep what was read
            self.input_error = f"input read stopped: {exc}"
            self.log.warning("%s", self.input_error)

    def _scan_audio(self, packet: av.Packet) -> None:
        try:
            frames = packet.decode()
        except av.FFmpegError:
            self.stats["corrupt_packets"] += 1
            return
        for frame in frames:
            t = frame.pts if frame.pts is not None else packet.pts
            if t is None:
                continue
            tb = frame.time_base or packet.time_base
            self.audio.add(frame, max(0, self.ticks_of(t, tb)))  # type: ignore[arg-type]

    def annexb(self, packet: av.Packet) -> bytes:
        data = bytes(packet)
        if self.avcc:
            data = avcc_to_annexb(data, self.avcc[0])
        return data

    def decoder(self) -> av.CodecContext:
        if self.codec == "h264":
            dec = av.CodecContext.create("h264", "r")
        else:
            src = self.video_stream.codec_context  # type: ignore[union-attr]
            dec = av.CodecContext.create(src.name, "r")
            if src.extradata:
                dec.extradata = src.extradata
        return dec  # fed packets with pts in ticks: its frames carry them

    def _probe_size(self, decoder: av.CodecContext, packet: av.Packet, data: Optional[bytes]) -> None:
        if data is not None:
            data = self.with_parameter_sets(data)
        try:
            frames = decoder.decode(self.decodable(packet, data, 0))
        except av.FFmpegError:
            return
        for frame in frames:
            self.width, self.height = frame.width - frame.width % 2, frame.height - frame.height % 2
            return

    def with_parameter_sets(self, data: bytes, always: bool = True) -> bytes:
        """Remember the SPS/PPS of an H.264 keyframe; return it with the last known ones
        inserted if it lacks them (a segment or a decoder must start with them)."""
        units = nal_units(data)
        types = {u[0] for u in units}
        for t, a, b in units:
            if t in (7, 8):
                self.sps_pps[t] = ANNEXB_PREFIX + data[a:b]
        if not always or {7, 8} <= types or not self.sps_pps:
            return data
        missing = b"".join(v for k, v in sorted(self.sps_pps.items()) if k not in types)
        if not missing:
            return data
        skip = units[0][2] if units and units[0][0] == 9 else 0  # after an access unit delimiter
        self.stats["parameter_sets_inserted"] = self.stats.get("parameter_sets_inserted", 0) + 1
        return data[:skip] + missing + data[skip:]

    def decodable(self, packet: av.Packet, data: Optional[bytes], pts: int) -> av.Packet:
        if data is None and not self.avcc:
            return packet
        out = av.Packet(data if data is not None else self.annexb(packet))
        out.time_base = TB
        out.pts = out.dts = pts
        return out


    def packet_source(self, container: av.container.InputContainer) -> Iterator[tuple[int, av.Packet]]:
        """Usable video packets again, as ``(index, packet)``, in the scan's order."""
        vi = self.vindex
        ordinal = -1
        n = 0
        try:
            for packet in container.demux(self.video_stream):
                if packet.size == 0:
                    continue
                ordinal += 1
                if n >= len(vi):
                    return
                if ordinal < vi.ordinal[n]:
                    continue
                yield n, packet
                n += 1
        except (av.FFmpegError, OSError, EOFError):
            pass
        if n < len(vi):
            raise PackagingError("the media file changed while it was being packaged")

