"""Live rooms and sessions: Room, Broadcast, Publisher, Subscriber, PeerSession."""
