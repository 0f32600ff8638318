"""WHIP/WHEP HTTP resources and permissions."""
