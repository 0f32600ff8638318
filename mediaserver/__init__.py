"""Stagepass media server: the SFU domain, CLI and app assembly."""
