"""Packaging a finished recording into an HLS replay, and the library of replays."""
