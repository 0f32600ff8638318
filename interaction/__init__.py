"""Socket.IO interaction (danmaku, Q&A, tips, polls): filled by the interaction issue."""
