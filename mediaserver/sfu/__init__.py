"""The packet engine: fanout, header rewrite, retransmission, keyframes, and the aiortc boundary."""
