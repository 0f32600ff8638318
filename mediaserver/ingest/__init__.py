"""Ingest of non-WebRTC encoders into the live domain (RTMP today): the encoder's
H.264 is packetized into RTP once per room and forwarded as is, its AAC transcoded to
Opus once per room. No HTTP here; the app assembly starts the listener."""
