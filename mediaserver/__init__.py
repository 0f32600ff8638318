"""The media domain: `sfu` (packet engine), `live` (rooms and sessions), `recording`, `packaging`, `storage`."""
