"""The apps, tasks and configurations that servers and workers run in a subprocess."""
