"""The app assembly and the `stagepass` CLI: the only package that imports every other."""
