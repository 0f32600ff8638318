"""Pages and static assets served by stagepass."""
